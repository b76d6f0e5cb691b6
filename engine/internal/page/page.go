// Package page defines the on-disk page layout shared by every page type.
//
// Every page starts with a 16-byte header:
//
//	[0:4]   CRC32C of bytes [4:PageSize]
//	[4:12]  LSN of the transaction that last wrote the page
//	[12]    page type
//	[13]    tree tag of B+tree and overflow pages (tree role + 1), for salvage
//	[14:16] reserved (zero)
//
// The checksum covers the LSN and type, so a page is verified on its own.
package page

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/sombradb/sombra/engine/internal/common"
)

// HeaderSize is the size of the common page header.
const HeaderSize = 16

// DefaultSize is the default page size.
const DefaultSize = 4096

// Type is the kind of a page.
type Type byte

const (
	TypeFree     Type = 0 // released page, reachable from the free list
	TypeMeta     Type = 1 // page 0
	TypeLeaf     Type = 2 // B+tree leaf
	TypeBranch   Type = 3 // B+tree interior node
	TypeOverflow Type = 4 // continuation of a large value
	TypeFreeList Type = 5 // free-list trunk page
)

func (t Type) String() string {
	switch t {
	case TypeFree:
		return "free"
	case TypeMeta:
		return "meta"
	case TypeLeaf:
		return "leaf"
	case TypeBranch:
		return "branch"
	case TypeOverflow:
		return "overflow"
	case TypeFreeList:
		return "freelist"
	}
	return fmt.Sprintf("type(%d)", byte(t))
}

// LSN returns the page LSN.
func LSN(p []byte) common.LSN { return common.LSN(binary.LittleEndian.Uint64(p[4:12])) }

// SetLSN stores the page LSN.
func SetLSN(p []byte, l common.LSN) { binary.LittleEndian.PutUint64(p[4:12], uint64(l)) }

// PageType returns the page type byte.
func PageType(p []byte) Type { return Type(p[12]) }

// SetType stores the page type.
func SetType(p []byte, t Type) { p[12] = byte(t) }

// Seal computes and stores the checksum. Call it last, after every change.
func Seal(p []byte) { binary.LittleEndian.PutUint32(p[0:4], common.Checksum(p[4:])) }

// Verify checks the checksum. A page of all zero bytes (allocated by file
// growth but never written) is reported as invalid too.
func Verify(p []byte) bool {
	return binary.LittleEndian.Uint32(p[0:4]) == common.Checksum(p[4:])
}

// Check verifies a page read from path at id and returns a CorruptionError
// naming it when the checksum fails.
func Check(p []byte, path string, id common.PageID) error {
	if Verify(p) {
		return nil
	}
	return &common.CorruptionError{Path: path, Page: id, Offset: int64(id) * int64(len(p)), Reason: "checksum mismatch"}
}

// ProbePageSize finds the page size under which the most of the first 64
// pages after page 0 of a file of size bytes carry a valid checksum, and
// how many do (0: none under any size, so the file holds no Sombra pages
// that can be read without a key). Tried first: prefer, if not zero.
func ProbePageSize(r io.ReaderAt, size int64, prefer int) (ps, verified int) {
	cands := []int{4096, 1024, 2048, 8192, 16384, 32768, 65536}
	if prefer > 0 {
		cands = append([]int{prefer}, cands...)
	}
	buf := make([]byte, 1<<16)
	for _, c := range cands {
		n := 0
		for id := int64(1); id <= 64 && (id+1)*int64(c) <= size; id++ {
			b := buf[:c]
			if _, err := r.ReadAt(b, id*int64(c)); err == nil && Verify(b) {
				n++
			}
		}
		if n > verified {
			ps, verified = c, n
		}
	}
	return ps, verified
}
