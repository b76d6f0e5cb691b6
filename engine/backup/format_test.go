package backup

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/common"
)

func sampleHeader() *Header {
	return &Header{Type: TypeIncremental, PageSize: 4096, PageCount: 123, BaseLSN: 40, EndLSN: 77, FileID: 0xdeadbeef,
		Created: time.Unix(1700000000, 5).UTC(), EndTime: time.Unix(1699999999, 7).UTC(),
		LogicalHash: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", Parent: "full_20240115_120000"}
}

func TestHeaderRoundTrip(t *testing.T) {
	h := sampleHeader()
	b, err := h.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *h {
		t.Fatalf("decoded %+v, want %+v", got, h)
	}
	b[200] ^= 1
	if _, err := DecodeHeader(b); !errors.Is(err, engine.ErrCorrupt) {
		t.Fatalf("flipped bit: %v", err)
	}
	if _, err := DecodeHeader([]byte("SQLite format 3\x00")); !errors.Is(err, ErrNotABackup) {
		t.Fatalf("foreign file: %v", err)
	}
}

// FuzzDecodeHeader: the decoder never panics, and whatever it accepts
// re-encodes to the same bytes.
func FuzzDecodeHeader(f *testing.F) {
	b, _ := sampleHeader().Encode()
	f.Add(b)
	full := &Header{Type: TypeFull, PageSize: 4096, PageCount: 1, EndLSN: 1, Created: time.Unix(1, 0).UTC()}
	b2, _ := full.Encode()
	f.Add(b2)
	f.Add([]byte(magic))
	f.Add(b[:100])
	f.Fuzz(func(t *testing.T, data []byte) {
		check(t, data)
		// Also with a valid checksum, so mutations reach the field checks.
		if len(data) >= HeaderSize {
			fixed := append([]byte(nil), data[:HeaderSize]...)
			binary.LittleEndian.PutUint32(fixed[508:], common.Checksum(fixed[:508]))
			check(t, fixed)
		}
	})
}

func check(t *testing.T, data []byte) {
	{
		h, err := DecodeHeader(data)
		if err != nil {
			return
		}
		out, err := h.Encode()
		if err != nil {
			t.Fatalf("accepted header does not encode: %+v: %v", h, err)
		}
		h2, err := DecodeHeader(out)
		if err != nil || *h2 != *h {
			t.Fatalf("re-decoded %+v, %v; want %+v", h2, err, h)
		}
	}
}
