package page

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/sombradb/sombra/engine/internal/common"
)

func FuzzDecodeMeta(f *testing.F) {
	good := make([]byte, DefaultSize)
	m := &Meta{Version: FormatVersion, PageSize: DefaultSize, PageCount: 9, FreeHead: 3, FreeCount: 1,
		NextNodeID: 5, NextEdgeID: 2, LastLSN: 11, Created: 1, FileID: 77}
	m.Roots[RootNodes] = 2
	m.Encode(good)
	Seal(good)
	f.Add(good[:MetaSize])
	f.Add(good)
	f.Add([]byte{})
	newer := append([]byte(nil), good[:MetaSize]...)
	binary.LittleEndian.PutUint32(newer[24:], FormatVersion+1)
	f.Add(newer)
	odd := append([]byte(nil), good[:MetaSize]...)
	binary.LittleEndian.PutUint32(odd[28:], 3000)
	f.Add(odd)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			if !errors.Is(err, common.ErrNotADatabase) && !errors.Is(err, common.ErrVersion) && !errors.Is(err, common.ErrCorrupt) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if m.Version == 0 || m.Version > FormatVersion || m.PageSize < 1024 || m.PageSize&(m.PageSize-1) != 0 {
			t.Fatalf("accepted %+v", m)
		}
		p := make([]byte, max(len(b), MetaSize))
		m.Encode(p)
		m2, err := DecodeMeta(p)
		if err != nil || *m2 != *m {
			t.Fatalf("round trip %+v -> %+v, %v", m, m2, err)
		}
	})
}

func TestSealVerify(t *testing.T) {
	p := make([]byte, 4096)
	SetType(p, TypeLeaf)
	SetLSN(p, 5)
	Seal(p)
	if err := Check(p, "f.db", 3); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 4, 12, 100, 4095} {
		p[i] ^= 1
		err := Check(p, "f.db", 3)
		if !errors.Is(err, common.ErrCorrupt) {
			t.Fatalf("flip at %d not detected", i)
		}
		p[i] ^= 1
	}
}
