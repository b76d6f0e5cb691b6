// Package walarchive keeps committed WAL transactions after the log is
// reset, for point-in-time recovery. An archive is a directory of segment
// files named <first LSN>-<last LSN>.walseg (LSNs zero-padded to 20 digits
// so names sort by LSN). Each segment holds complete committed transactions
// with consecutive LSNs: their commit timestamps and full page images.
//
// Segment layout (little endian):
//
//	header, 64 bytes:
//	  [0:8]   magic "SOMBRAWA"
//	  [8:12]  format version
//	  [12:16] page size
//	  [16:24] file id of the database
//	  [24:32] first LSN
//	  [32:40] last LSN
//	  [40:48] commit time of the first transaction (unix ns)
//	  [48:56] commit time of the last transaction (unix ns)
//	  [56:60] transaction count
//	  [60:64] CRC32C of [0:60]
//	per transaction, a 24-byte header:
//	  [0:8]   LSN
//	  [8:16]  commit time (unix ns)
//	  [16:20] frame count
//	  [20:24] CRC32C of [0:20]
//	then per frame, 16 bytes + page size:
//	  [0:8]   page number
//	  [8:12]  CRC32C of [0:8] and the page image
//	  [12:16] reserved
//	  [16:..] page image (itself sealed with the page checksum)
//	trailer, 32 bytes:
//	  [0:8]   magic "SOMBRAWE"
//	  [8:16]  frame count
//	  [16:20] CRC32C of every byte between the header and the trailer
//	  [20:24] transaction count
//	  [24:28] CRC32C of [0:24]
//	  [28:32] reserved
//
// Segments are written to a temporary name, fsynced and renamed, so a
// segment that has its final name is complete.
package walarchive

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sombradb/sombra/engine/internal/common"
)

const (
	// Ext is the segment file extension.
	Ext          = ".walseg"
	magic        = "SOMBRAWA"
	trailerMagic = "SOMBRAWE"
	version      = 1
	// HeaderSize is the size of a segment header.
	HeaderSize  = 64
	txHdrSize   = 24
	frameHdr    = 16
	trailerSize = 32
)

// ErrBadSegment is returned for a segment that fails validation.
var ErrBadSegment = errors.New("invalid WAL archive segment")

// Header is a decoded segment header.
type Header struct {
	PageSize  int
	FileID    uint64
	FirstLSN  common.LSN
	LastLSN   common.LSN
	FirstTime int64
	LastTime  int64
	Txs       int
}

func (h *Header) encode() []byte {
	b := make([]byte, HeaderSize)
	le := binary.LittleEndian
	copy(b, magic)
	le.PutUint32(b[8:], version)
	le.PutUint32(b[12:], uint32(h.PageSize))
	le.PutUint64(b[16:], h.FileID)
	le.PutUint64(b[24:], uint64(h.FirstLSN))
	le.PutUint64(b[32:], uint64(h.LastLSN))
	le.PutUint64(b[40:], uint64(h.FirstTime))
	le.PutUint64(b[48:], uint64(h.LastTime))
	le.PutUint32(b[56:], uint32(h.Txs))
	le.PutUint32(b[60:], common.Checksum(b[:60]))
	return b
}

// DecodeHeader parses and validates a segment header. It never panics.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize || string(b[:8]) != magic {
		return Header{}, fmt.Errorf("%w: bad magic", ErrBadSegment)
	}
	le := binary.LittleEndian
	if le.Uint32(b[60:]) != common.Checksum(b[:60]) {
		return Header{}, fmt.Errorf("%w: header checksum mismatch", ErrBadSegment)
	}
	if v := le.Uint32(b[8:]); v != version {
		return Header{}, fmt.Errorf("segment version %d: %w", v, common.ErrVersion)
	}
	h := Header{PageSize: int(le.Uint32(b[12:])), FileID: le.Uint64(b[16:]),
		FirstLSN: common.LSN(le.Uint64(b[24:])), LastLSN: common.LSN(le.Uint64(b[32:])),
		FirstTime: int64(le.Uint64(b[40:])), LastTime: int64(le.Uint64(b[48:])), Txs: int(le.Uint32(b[56:]))}
	if h.PageSize < 1024 || h.PageSize > 65536 || h.PageSize&(h.PageSize-1) != 0 {
		return Header{}, fmt.Errorf("%w: page size %d", ErrBadSegment, h.PageSize)
	}
	if h.Txs == 0 || h.LastLSN < h.FirstLSN || uint64(h.LastLSN-h.FirstLSN)+1 != uint64(h.Txs) {
		return Header{}, fmt.Errorf("%w: LSN range %d-%d does not hold %d transactions", ErrBadSegment, h.FirstLSN, h.LastLSN, h.Txs)
	}
	return h, nil
}

type trailer struct {
	frames  uint64
	bodySum uint32
	txs     uint32
}

func (t trailer) encode() []byte {
	b := make([]byte, trailerSize)
	le := binary.LittleEndian
	copy(b, trailerMagic)
	le.PutUint64(b[8:], t.frames)
	le.PutUint32(b[16:], t.bodySum)
	le.PutUint32(b[20:], t.txs)
	le.PutUint32(b[24:], common.Checksum(b[:24]))
	return b
}

func decodeTrailer(b []byte) (trailer, error) {
	if len(b) < trailerSize || string(b[:8]) != trailerMagic {
		return trailer{}, fmt.Errorf("%w: missing trailer (incomplete segment)", ErrBadSegment)
	}
	le := binary.LittleEndian
	if le.Uint32(b[24:]) != common.Checksum(b[:24]) {
		return trailer{}, fmt.Errorf("%w: trailer checksum mismatch", ErrBadSegment)
	}
	return trailer{frames: le.Uint64(b[8:]), bodySum: le.Uint32(b[16:]), txs: le.Uint32(b[20:])}, nil
}

// TxHeader describes one archived transaction.
type TxHeader struct {
	LSN      common.LSN
	CommitTS int64 // unix nanoseconds
	Frames   int
}

func (t TxHeader) encode(b []byte) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], uint64(t.LSN))
	le.PutUint64(b[8:], uint64(t.CommitTS))
	le.PutUint32(b[16:], uint32(t.Frames))
	le.PutUint32(b[20:], common.Checksum(b[:20]))
}

func decodeTxHeader(b []byte) (TxHeader, bool) {
	le := binary.LittleEndian
	if len(b) < txHdrSize || le.Uint32(b[20:]) != common.Checksum(b[:20]) {
		return TxHeader{}, false
	}
	return TxHeader{LSN: common.LSN(le.Uint64(b[0:])), CommitTS: int64(le.Uint64(b[8:])), Frames: int(le.Uint32(b[16:]))}, true
}

// SegmentName is the file name of a segment holding LSNs first..last.
func SegmentName(first, last common.LSN) string {
	return fmt.Sprintf("%020d-%020d%s", first, last, Ext)
}
