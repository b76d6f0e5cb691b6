// Package wal implements the write-ahead log file: its header, its frames of
// full page images, scanning with checksum validation, and the in-memory
// index from page number to the frames that hold it.
//
// File layout (little endian):
//
//	header, 40 bytes:
//	  [0:4]   magic "SWAL"
//	  [4:8]   format version
//	  [8:12]  page size
//	  [12:16] checkpoint sequence (incremented at every WAL restart)
//	  [16:24] salt (random, new at every restart)
//	  [24:32] file id of the database the log belongs to
//	  [32:36] CRC32C of [0:32]
//	  [36:40] reserved
//	frames, each FrameHeaderSize + page size bytes:
//	  [0:8]   page number
//	  [8:16]  LSN of the transaction
//	  [16:24] transaction id
//	  [24:28] flags: bit 0 = commit frame (last frame of a transaction)
//	  [28:32] reserved
//	  [32:40] commit timestamp, unix nanoseconds (commit frames only)
//	  [40:48] salt (must equal the header's)
//	  [48:52] checksum: CRC32C over the previous frame's checksum (or the
//	          header checksum for the first frame), bytes [0:48] and the page
//	  [52:56] reserved
//
// Chaining the checksum means a frame left over from an older, longer
// transaction can never be mistaken for part of the current log.
package wal

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sombradb/sombra/engine/internal/common"
)

const (
	Magic           = "SWAL"
	Version         = 1
	HeaderSize      = 40
	FrameHeaderSize = 56
	flagCommit      = 1
)

// Header is the decoded WAL header.
type Header struct {
	PageSize uint32
	CkptSeq  uint32
	Salt     uint64
	FileID   uint64
	Sum      uint32
}

// Encode returns the 40 header bytes and sets h.Sum.
func (h *Header) Encode() []byte {
	b := make([]byte, HeaderSize)
	copy(b[0:4], Magic)
	le := binary.LittleEndian
	le.PutUint32(b[4:], Version)
	le.PutUint32(b[8:], h.PageSize)
	le.PutUint32(b[12:], h.CkptSeq)
	le.PutUint64(b[16:], h.Salt)
	le.PutUint64(b[24:], h.FileID)
	h.Sum = common.Checksum(b[0:32])
	le.PutUint32(b[32:], h.Sum)
	return b
}

// ErrBadHeader is returned for a WAL header that fails validation.
var ErrBadHeader = errors.New("invalid WAL header")

// DecodeHeader parses and validates a WAL header.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize || string(b[0:4]) != Magic {
		return Header{}, ErrBadHeader
	}
	le := binary.LittleEndian
	if le.Uint32(b[32:]) != common.Checksum(b[0:32]) {
		return Header{}, fmt.Errorf("%w: checksum mismatch", ErrBadHeader)
	}
	if v := le.Uint32(b[4:]); v != Version {
		return Header{}, fmt.Errorf("WAL version %d: %w", v, common.ErrVersion)
	}
	return Header{PageSize: le.Uint32(b[8:]), CkptSeq: le.Uint32(b[12:]), Salt: le.Uint64(b[16:]), FileID: le.Uint64(b[24:]), Sum: le.Uint32(b[32:])}, nil
}

// Frame describes one frame.
type Frame struct {
	Page     common.PageID
	LSN      common.LSN
	TxID     common.TxID
	Commit   bool
	CommitTS int64 // unix nanoseconds, commit frames only
}

// FrameSize is the size of one frame for a page size.
func FrameSize(pageSize int) int64 { return int64(FrameHeaderSize + pageSize) }

// FrameOffset is the file offset of frame i (0-based).
func FrameOffset(pageSize int, i int) int64 { return HeaderSize + int64(i)*FrameSize(pageSize) }

// EncodeFrame fills buf (FrameHeaderSize bytes followed by the page) with f's
// header, salt and chained checksum, and returns the new checksum.
func EncodeFrame(buf []byte, f Frame, salt uint64, prevSum uint32) uint32 {
	le := binary.LittleEndian
	le.PutUint64(buf[0:], uint64(f.Page))
	le.PutUint64(buf[8:], uint64(f.LSN))
	le.PutUint64(buf[16:], uint64(f.TxID))
	var flags uint32
	if f.Commit {
		flags |= flagCommit
	}
	le.PutUint32(buf[24:], flags)
	le.PutUint32(buf[28:], 0)
	le.PutUint64(buf[32:], uint64(f.CommitTS))
	le.PutUint64(buf[40:], salt)
	sum := frameSum(buf, prevSum)
	le.PutUint32(buf[48:], sum)
	le.PutUint32(buf[52:], 0)
	return sum
}

func frameSum(buf []byte, prevSum uint32) uint32 {
	var p [4]byte
	binary.LittleEndian.PutUint32(p[:], prevSum)
	s := common.Checksum(p[:])
	s = common.ChecksumUpdate(s, buf[0:48])
	return common.ChecksumUpdate(s, buf[FrameHeaderSize:])
}

// DecodeFrame validates a frame buffer against the salt and the previous
// checksum. ok is false if the salt differs (a frame of an older log) and
// err is set if the salt matches but the checksum does not (damage).
func DecodeFrame(buf []byte, salt uint64, prevSum uint32) (f Frame, sum uint32, ok bool, err error) {
	if len(buf) < FrameHeaderSize {
		return Frame{}, 0, false, nil
	}
	le := binary.LittleEndian
	if le.Uint64(buf[40:]) != salt {
		return Frame{}, 0, false, nil
	}
	sum = le.Uint32(buf[48:])
	if sum != frameSum(buf, prevSum) {
		return Frame{}, 0, false, errors.New("frame checksum mismatch")
	}
	f = Frame{
		Page:     common.PageID(le.Uint64(buf[0:])),
		LSN:      common.LSN(le.Uint64(buf[8:])),
		TxID:     common.TxID(le.Uint64(buf[16:])),
		Commit:   le.Uint32(buf[24:])&flagCommit != 0,
		CommitTS: int64(le.Uint64(buf[32:])),
	}
	return f, sum, true, nil
}
