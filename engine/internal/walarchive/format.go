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
//
// A segment of an encrypted database is sealed (format version 2). Its
// page images are stored as the WAL holds them: every page but page 0
// sealed by the database's PageCipher (AES-256-GCM, page number as
// additional data, a random nonce per seal). The CRCs above only catch
// accidents, so a sealed segment also carries an authenticator between the
// body and the trailer, 144 bytes:
//
//	[0:8]    magic "SOMBRAWK"
//	[8:52]   key check: the cipher's seal of page.KeyCheckText under
//	         page.KeyCheckPageID (tells a wrong key from a damaged segment)
//	[52:144] the cipher's seal, under AuthPageID, of 64 bytes: the digest
//	         (SHA-256 of the header, the body, bytes [0:52] of this block
//	         and the trailer), then the digest of the segment this one
//	         follows (the one ending at LSN first-1 when it was written;
//	         zero when there was none)
//
// Nobody without the key can produce a seal that opens, so a segment whose
// header, transaction headers, frames or trailer were altered, cut short,
// or taken from another segment fails to authenticate; readers check it
// before they use anything in the segment. The predecessor's digest chains
// the segments: one put in the place of another (a segment of the same
// database and key from a history that diverged after a restore) does not
// follow the segment before it. The header, transaction headers
// and page numbers (LSNs, commit times, which pages changed) stay readable
// without the key, as in the WAL itself; page contents do not.
package walarchive

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
)

const (
	// Ext is the segment file extension.
	Ext          = ".walseg"
	magic        = "SOMBRAWA"
	trailerMagic = "SOMBRAWE"
	version      = 1
	// versionSealed marks a sealed segment (of an encrypted database).
	// Builds that predate it refuse such a segment as an unsupported
	// version rather than misread it.
	versionSealed = 2
	authMagic     = "SOMBRAWK"
	// AuthPageID is the page id the segment digest is sealed under: no
	// page of a file can have it (nor the key check's page.KeyCheckPageID),
	// so a digest seal never opens as a page or the other way round.
	AuthPageID = ^uint64(0) - 1
	// cipherOverhead is the nonce and tag of the only supported cipher
	// (the engine refuses others; the key check relies on it too).
	cipherOverhead = 28
	digestSize     = 32
	// AuthSize is the size of a sealed segment's authenticator.
	AuthSize = 8 + page.KeyCheckSize + 2*digestSize + cipherOverhead
	// HeaderSize is the size of a segment header.
	HeaderSize  = 64
	txHdrSize   = 24
	frameHdr    = 16
	trailerSize = 32
)

// ErrBadSegment is returned for a segment that fails validation.
var ErrBadSegment = errors.New("invalid WAL archive segment")

// Errors of sealed segments; each also matches common.ErrEncryption.
var (
	// ErrKeyRequired is returned when a sealed segment is to be read or
	// verified without the database's key.
	ErrKeyRequired = fmt.Errorf("sealed WAL archive segment: the database's encryption key is required: %w", common.ErrEncryption)
	// ErrWrongKey is returned when a sealed segment was sealed with
	// another key than the one given.
	ErrWrongKey = fmt.Errorf("WAL archive segment was sealed with another key: %w", common.ErrEncryption)
	// ErrMixed is returned when an archive mixes sealed and plaintext
	// segments for one database, or the segments do not match the
	// database (sealed segments for a plaintext one or the reverse): one
	// file is encrypted or not, and replaying a mix would write both kinds
	// of page into it.
	ErrMixed = fmt.Errorf("sealed (encrypted) and plaintext pieces cannot be mixed: %w", common.ErrEncryption)
)

// Cipher seals and opens page images: an engine.PageCipher (the database's
// key), the same primitive sealed backups and the pager use.
type Cipher interface {
	Overhead() int
	Seal(pageID uint64, plain []byte) []byte
	Open(pageID uint64, sealed []byte) ([]byte, error)
}

// Header is a decoded segment header.
type Header struct {
	PageSize  int
	FileID    uint64
	FirstLSN  common.LSN
	LastLSN   common.LSN
	FirstTime int64
	LastTime  int64
	Txs       int
	// Sealed is set for a segment of an encrypted database (version 2).
	Sealed bool
}

func (h *Header) encode() []byte {
	b := make([]byte, HeaderSize)
	le := binary.LittleEndian
	copy(b, magic)
	v := uint32(version)
	if h.Sealed {
		v = versionSealed
	}
	le.PutUint32(b[8:], v)
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
	v := le.Uint32(b[8:])
	if v != version && v != versionSealed {
		return Header{}, fmt.Errorf("segment version %d: %w", v, common.ErrVersion)
	}
	h := Header{Sealed: v == versionSealed, PageSize: int(le.Uint32(b[12:])), FileID: le.Uint64(b[16:]),
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

// auth is a decoded authenticator of a sealed segment.
type auth struct {
	keyCheck []byte // page.KeyCheckSize bytes
	sealed   []byte // sealed digests, 2*digestSize+cipherOverhead bytes
}

// newAuth returns the start of an authenticator: the magic and a fresh
// key check; the sealed digests, which cover these bytes, are appended by
// the writer (sealDigests).
func newAuth(c Cipher) ([]byte, error) {
	kc := c.Seal(page.KeyCheckPageID, []byte(page.KeyCheckText))
	if c.Overhead() != cipherOverhead || len(kc) != page.KeyCheckSize {
		return nil, fmt.Errorf("page cipher overhead %d is not supported: %w", c.Overhead(), common.ErrEncryption)
	}
	b := make([]byte, 0, AuthSize)
	b = append(b, authMagic...)
	return append(b, kc...), nil
}

// sealDigests seals a segment's digest and its predecessor's (nil: none).
func sealDigests(c Cipher, digest, prev []byte) []byte {
	pt := make([]byte, 2*digestSize)
	copy(pt, digest)
	copy(pt[digestSize:], prev)
	return c.Seal(AuthPageID, pt)
}

// decodeAuth splits an authenticator. It never panics.
func decodeAuth(b []byte) (auth, error) {
	if len(b) != AuthSize || string(b[:8]) != authMagic {
		return auth{}, fmt.Errorf("%w: sealed segment has no authenticator", ErrBadSegment)
	}
	kcEnd := 8 + page.KeyCheckSize
	return auth{keyCheck: b[8:kcEnd], sealed: b[kcEnd:]}, nil
}

// checkKey tells a wrong key from a damaged segment.
func (a auth) checkKey(c Cipher) error {
	if pt, err := c.Open(page.KeyCheckPageID, a.keyCheck); err != nil || string(pt) != page.KeyCheckText {
		return ErrWrongKey
	}
	return nil
}

// open returns the sealed digest and predecessor digest (all zero: none).
func (a auth) open(c Cipher) (digest, prev []byte, ok bool) {
	pt, err := c.Open(AuthPageID, a.sealed)
	if err != nil || len(pt) != 2*digestSize {
		return nil, nil, false
	}
	return pt[:digestSize], pt[digestSize:], true
}

// noPrev reports whether a predecessor digest says "none".
func noPrev(prev []byte) bool { return subtle.ConstantTimeCompare(prev, make([]byte, digestSize)) == 1 }

// sameDigest compares two digests.
func sameDigest(a, b []byte) bool {
	return len(a) == digestSize && subtle.ConstantTimeCompare(a, b) == 1
}
