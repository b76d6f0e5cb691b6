package backup

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/vfs"
)

// Backup file layout (little endian). A backup file is self-describing:
// the catalog can always be rebuilt from the files alone.
//
//	header, HeaderSize (512) bytes:
//	  [0:8]     magic "SOMBRABK"
//	  [8:12]    format version
//	  [12:16]   header size
//	  [16]      type: 1 full, 2 incremental
//	  [17]      flags: bit 0 = a logical hash is recorded; bit 1 = it is
//	            the order-independent hash (engine.Tx.LogicalHash), else the
//	            legacy key-order one (engine.Tx.LegacyLogicalHash); bit 2 = sealed:
//	            the database is encrypted and every page image but page 0's
//	            is stored sealed, as in the file (restoring and verifying
//	            need the key)
//	  [18:20]   parent name length
//	  [20:24]   page size
//	  [24:32]   page count of the database at the end LSN
//	  [32:40]   base LSN (exclusive; 0 for a full backup): the parent's end LSN
//	  [40:48]   end LSN: the last transaction the backup contains
//	  [48:56]   file id of the database
//	  [56:64]   creation time (unix ns)
//	  [64:72]   commit time of the end LSN (unix ns; 0 if unknown)
//	  [72:104]  logical hash (SHA-256 of nodes and edges, see engine.Tx.LogicalHash)
//	  [104:360] parent backup name (incremental backups)
//	  [360:508] reserved, zero
//	  [508:512] CRC32C of [0:508]
//	page records, ascending page number, 16 bytes + page size each:
//	  [0:8]     page number
//	  [8:12]    CRC32C of [0:8] and the page image
//	  [12:16]   reserved
//	  [16:..]   page image (with its own page checksum and LSN)
//	trailer, TrailerSize (32) bytes:
//	  [0:8]     magic "SOMBRAEN"
//	  [8:16]    record count
//	  [16:20]   CRC32C of every record byte (the body)
//	  [20:24]   reserved
//	  [24:28]   CRC32C of [0:24]
//	  [28:32]   reserved
//
// A full backup holds every page 0..page count-1; an incremental one holds
// exactly the pages whose page LSN is above its base LSN.
const (
	// Ext is the extension of every backup file.
	Ext = ".backup"
	// FormatVersion is the backup format this code writes and reads.
	FormatVersion = 1
	// HeaderSize is the size of the backup header.
	HeaderSize = 512
	// TrailerSize is the size of the backup trailer.
	TrailerSize = 32

	magic         = "SOMBRABK"
	trailerMagic  = "SOMBRAEN"
	recHdrSize    = 16
	maxParentName = 256
	flagHash      = 1
	flagHashV2    = 2
	flagSealed    = 4
)

// Type is the kind of a backup.
type Type uint8

// Backup types.
const (
	TypeFull        Type = 1
	TypeIncremental Type = 2
)

func (t Type) String() string {
	switch t {
	case TypeFull:
		return "full"
	case TypeIncremental:
		return "incremental"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType parses "full" or "incremental".
func ParseType(s string) (Type, error) {
	switch s {
	case "full":
		return TypeFull, nil
	case "incremental", "inc":
		return TypeIncremental, nil
	}
	return 0, fmt.Errorf("backup type %q (want full or incremental): %w", s, common.ErrInvalid)
}

// Header is the decoded header of a backup file.
type Header struct {
	Type        Type
	PageSize    int
	PageCount   uint64
	BaseLSN     uint64 // exclusive; 0 for a full backup
	EndLSN      uint64
	FileID      uint64
	Created     time.Time
	EndTime     time.Time // commit time of EndLSN; zero if unknown
	LogicalHash string    // hex; empty if not recorded
	// LegacyHash says LogicalHash is the key-order hash of backups written
	// before it became order-independent (engine.Tx.LegacyLogicalHash).
	LegacyHash bool
	Parent     string // incremental backups: the parent's name
	// Sealed is set for a backup of an encrypted database: its page
	// images (but page 0) are sealed with the database's key.
	Sealed bool
}

// Encode returns the HeaderSize header bytes.
func (h *Header) Encode() ([]byte, error) {
	if len(h.Parent) > maxParentName {
		return nil, fmt.Errorf("parent name %q longer than %d bytes: %w", h.Parent, maxParentName, common.ErrInvalid)
	}
	b := make([]byte, HeaderSize)
	le := binary.LittleEndian
	copy(b, magic)
	le.PutUint32(b[8:], FormatVersion)
	le.PutUint32(b[12:], HeaderSize)
	b[16] = byte(h.Type)
	if h.LogicalHash != "" {
		raw, err := hex.DecodeString(h.LogicalHash)
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("logical hash %q: %w", h.LogicalHash, common.ErrInvalid)
		}
		b[17] |= flagHash
		if !h.LegacyHash {
			b[17] |= flagHashV2
		}
		copy(b[72:104], raw)
	}
	if h.Sealed {
		b[17] |= flagSealed
	}
	le.PutUint16(b[18:], uint16(len(h.Parent)))
	le.PutUint32(b[20:], uint32(h.PageSize))
	le.PutUint64(b[24:], h.PageCount)
	le.PutUint64(b[32:], h.BaseLSN)
	le.PutUint64(b[40:], h.EndLSN)
	le.PutUint64(b[48:], h.FileID)
	le.PutUint64(b[56:], uint64(unixNano(h.Created)))
	le.PutUint64(b[64:], uint64(unixNano(h.EndTime)))
	copy(b[104:], h.Parent)
	le.PutUint32(b[508:], common.Checksum(b[:508]))
	return b, nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// ErrNotABackup is returned for a file that is not a backup (wrong magic).
var ErrNotABackup = errors.New("not a sombra backup")

// DecodeHeader parses and validates a backup header. It returns an error,
// never panics, on any input.
func DecodeHeader(b []byte) (*Header, error) {
	if len(b) < 8 || string(b[:8]) != magic {
		return nil, ErrNotABackup
	}
	if len(b) < HeaderSize {
		return nil, fmt.Errorf("header is %d bytes, want %d: %w", len(b), HeaderSize, common.ErrCorrupt)
	}
	le := binary.LittleEndian
	if le.Uint32(b[508:]) != common.Checksum(b[:508]) {
		return nil, fmt.Errorf("header checksum mismatch: %w", common.ErrCorrupt)
	}
	if v := le.Uint32(b[8:]); v != FormatVersion {
		return nil, fmt.Errorf("backup format version %d, this build reads %d: %w", v, FormatVersion, common.ErrVersion)
	}
	if hs := le.Uint32(b[12:]); hs != HeaderSize {
		return nil, fmt.Errorf("header size %d: %w", hs, common.ErrCorrupt)
	}
	h := &Header{Type: Type(b[16]), PageSize: int(le.Uint32(b[20:])), PageCount: le.Uint64(b[24:]),
		BaseLSN: le.Uint64(b[32:]), EndLSN: le.Uint64(b[40:]), FileID: le.Uint64(b[48:]),
		Created: fromUnixNano(int64(le.Uint64(b[56:]))), EndTime: fromUnixNano(int64(le.Uint64(b[64:])))}
	if h.Type != TypeFull && h.Type != TypeIncremental {
		return nil, fmt.Errorf("backup type %d: %w", b[16], common.ErrCorrupt)
	}
	if h.PageSize < 1024 || h.PageSize > 65536 || h.PageSize&(h.PageSize-1) != 0 {
		return nil, fmt.Errorf("page size %d: %w", h.PageSize, common.ErrCorrupt)
	}
	if h.PageCount == 0 || h.PageCount > 1<<40 {
		return nil, fmt.Errorf("page count %d: %w", h.PageCount, common.ErrCorrupt)
	}
	if h.EndLSN < h.BaseLSN || (h.Type == TypeFull && h.BaseLSN != 0) {
		return nil, fmt.Errorf("LSN range %d-%d for a %s backup: %w", h.BaseLSN, h.EndLSN, h.Type, common.ErrCorrupt)
	}
	if b[17]&flagHash != 0 {
		h.LogicalHash = hex.EncodeToString(b[72:104])
		h.LegacyHash = b[17]&flagHashV2 == 0
	}
	h.Sealed = b[17]&flagSealed != 0
	n := int(le.Uint16(b[18:]))
	if n > maxParentName {
		return nil, fmt.Errorf("parent name length %d: %w", n, common.ErrCorrupt)
	}
	h.Parent = string(b[104 : 104+n])
	if (h.Type == TypeIncremental) != (n > 0) {
		return nil, fmt.Errorf("%s backup with parent %q: %w", h.Type, h.Parent, common.ErrCorrupt)
	}
	return h, nil
}

type trailer struct {
	records uint64
	bodySum uint32
}

func (t trailer) encode() []byte {
	b := make([]byte, TrailerSize)
	le := binary.LittleEndian
	copy(b, trailerMagic)
	le.PutUint64(b[8:], t.records)
	le.PutUint32(b[16:], t.bodySum)
	le.PutUint32(b[24:], common.Checksum(b[:24]))
	return b
}

func decodeTrailer(b []byte) (trailer, error) {
	if len(b) < TrailerSize || string(b[:8]) != trailerMagic {
		return trailer{}, errors.New("trailer missing (incomplete backup)")
	}
	le := binary.LittleEndian
	if le.Uint32(b[24:]) != common.Checksum(b[:24]) {
		return trailer{}, errors.New("trailer checksum mismatch")
	}
	return trailer{records: le.Uint64(b[8:]), bodySum: le.Uint32(b[16:])}, nil
}

// file is an open backup file whose header and trailer were validated.
type file struct {
	f       vfs.File
	path    string
	hdr     *Header
	records uint64
	bodySum uint32
	size    int64
	// open unseals a page image of a sealed backup (nil: no key given).
	open func(id common.PageID, img []byte) ([]byte, error)
}

func (b *file) corrupt(off int64, pg common.PageID, reason string) error {
	return &common.CorruptionError{Path: b.path, Page: pg, Offset: off, Reason: reason}
}

// openFile opens a backup and validates its header, trailer and size.
func openFile(fs vfs.FS, path string) (*file, error) {
	f, err := fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", path, common.ErrNotFound)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	b, err := validate(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return b, nil
}

func validate(f vfs.File, path string) (*file, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	hb := make([]byte, HeaderSize)
	n, err := f.ReadAt(hb, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	h, err := DecodeHeader(hb[:n])
	if err != nil {
		if errors.Is(err, common.ErrCorrupt) {
			return nil, &common.CorruptionError{Path: path, Page: 0, Offset: 0, Reason: "backup header: " + err.Error()}
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	b := &file{f: f, path: path, hdr: h, size: st.Size()}
	if st.Size() < HeaderSize+TrailerSize {
		return nil, b.corrupt(st.Size(), 0, "backup truncated: no trailer")
	}
	tb := make([]byte, TrailerSize)
	if _, err := f.ReadAt(tb, st.Size()-TrailerSize); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	t, err := decodeTrailer(tb)
	if err != nil {
		return nil, b.corrupt(st.Size()-TrailerSize, 0, err.Error())
	}
	b.records, b.bodySum = t.records, t.bodySum
	want := int64(HeaderSize+TrailerSize) + int64(t.records)*int64(recHdrSize+h.PageSize)
	if t.records > h.PageCount || want != st.Size() {
		return nil, b.corrupt(st.Size()-TrailerSize, 0, fmt.Sprintf("trailer counts %d records but the file is %d bytes", t.records, st.Size()))
	}
	if h.Type == TypeFull && t.records != h.PageCount {
		return nil, b.corrupt(st.Size()-TrailerSize, 0, fmt.Sprintf("full backup holds %d of %d pages", t.records, h.PageCount))
	}
	return b, nil
}

func (b *file) Close() error { return b.f.Close() }

// each streams the page records in order, verifying every record checksum,
// every page checksum, page order and LSN bounds, and finally the body
// checksum. fn receives a buffer that is reused for the next record.
func (b *file) each(fn func(id common.PageID, img []byte) error) error {
	h := b.hdr
	rs := recHdrSize + h.PageSize
	const batch = 16
	buf := make([]byte, rs*batch)
	sum := uint32(0)
	off := int64(HeaderSize)
	next := common.PageID(0)
	for i := uint64(0); i < b.records; {
		n := min(uint64(batch), b.records-i)
		chunk := buf[:int(n)*rs]
		if _, err := b.f.ReadAt(chunk, off); err != nil {
			return fmt.Errorf("read %s: %w", b.path, err)
		}
		sum = common.ChecksumUpdate(sum, chunk)
		for j := 0; j < int(n); j++ {
			rec := chunk[j*rs : (j+1)*rs]
			roff := off + int64(j*rs)
			id := common.PageID(binary.LittleEndian.Uint64(rec[0:]))
			img := rec[recHdrSize:]
			if h.Type == TypeFull && id != common.PageID(i)+common.PageID(j) {
				return b.corrupt(roff, common.PageID(i)+common.PageID(j), fmt.Sprintf("record %d names page %d", i+uint64(j), id))
			}
			if binary.LittleEndian.Uint32(rec[8:]) != common.ChecksumUpdate(common.Checksum(rec[:8]), img) {
				return b.corrupt(roff, id, fmt.Sprintf("backup record %d: checksum mismatch", i+uint64(j)))
			}
			if id < next || uint64(id) >= h.PageCount {
				return b.corrupt(roff, id, fmt.Sprintf("record %d: page %d out of order or beyond the page count %d", i+uint64(j), id, h.PageCount))
			}
			next = id + 1
			pg := img
			if h.Sealed && id != 0 {
				if b.open == nil {
					return fmt.Errorf("%s is a sealed backup of an encrypted database: its key is needed (SOMBRA_ENCRYPTION_KEY, Options.Encryption): %w", b.path, common.ErrEncryption)
				}
				var err error
				if pg, err = b.open(id, img); err != nil {
					return b.corrupt(roff, id, "sealed page does not open (altered, or another key)")
				}
			}
			if !page.Verify(pg) {
				return b.corrupt(roff, id, "page checksum mismatch in backup")
			}
			if l := uint64(page.LSN(pg)); l > h.EndLSN || (h.Type == TypeIncremental && l <= h.BaseLSN) {
				return b.corrupt(roff, id, fmt.Sprintf("page LSN %d outside the backup's range %d-%d", l, h.BaseLSN, h.EndLSN))
			}
			if err := fn(id, img); err != nil {
				return err
			}
		}
		i += n
		off += int64(len(chunk))
	}
	if sum != b.bodySum {
		return b.corrupt(off, 0, "backup body checksum mismatch")
	}
	return nil
}
