package walarchive

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/dirlock"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/wal"
	"github.com/sombradb/sombra/engine/vfs"
)

// Errors returned by archiving.
var (
	// ErrTimeline is returned when the log holds a transaction whose LSN is
	// already archived with a different commit time: the database was
	// restored to an earlier point (or replaced) and has diverged from the
	// history in the archive. Archive it to a new directory.
	ErrTimeline = errors.New("WAL diverges from the archived history")
	// ErrForeign is returned when the archive holds segments of another
	// database file for the same LSNs.
	ErrForeign = errors.New("archive belongs to another database file")
	// ErrLogReset is returned when the log was reset while it was read.
	ErrLogReset = errors.New("WAL was reset while it was being archived")
)

// Archive is a directory of segments.
type Archive struct {
	FS  vfs.FS
	Dir string
	// LockTimeout bounds the wait for another archiver (default 30s).
	LockTimeout time.Duration
	// Sealed says the database whose transactions are archived or read is
	// encrypted: its segments are written sealed, and reading or writing
	// a plaintext segment of it fails with ErrMixed (as a sealed one does
	// for a plaintext database). Cipher is its key, needed to write, read
	// or verify sealed segments (ErrKeyRequired without it). Listing
	// segments (Segments, LastLSN) needs neither.
	Sealed bool
	Cipher Cipher
}

// New returns the archive in dir (created on first write).
func New(fs vfs.FS, dir string) *Archive {
	if fs == nil {
		fs = vfs.OS
	}
	return &Archive{FS: fs, Dir: dir, LockTimeout: 30 * time.Second}
}

// SealedWith makes a the archive of a database sealed with c (Sealed and
// Cipher set) when c is not nil, and returns it: pass the pager's cipher,
// nil for a plaintext database.
func (a *Archive) SealedWith(c Cipher) *Archive {
	if c != nil {
		a.Sealed, a.Cipher = true, c
	}
	return a
}

// Segment is one valid segment file.
type Segment struct {
	Header
	Path string
	Size int64
}

// bodyEnd is the offset where the transactions end: the trailer, or the
// authenticator of a sealed segment.
func (s Segment) bodyEnd() int64 {
	if s.Sealed {
		return s.Size - trailerSize - AuthSize
	}
	return s.Size - trailerSize
}

// kind names a segment's form for messages.
func kind(sealed bool) string {
	if sealed {
		return "sealed (encrypted database)"
	}
	return "plaintext"
}

// checkKind refuses a segment whose form is not the database's.
func (a *Archive) checkKind(s Segment) error {
	if s.Sealed != a.Sealed {
		return fmt.Errorf("%s is %s but the database is %s: %w", s.Path, kind(s.Sealed), kind(a.Sealed), ErrMixed)
	}
	return nil
}

// BadSegment is a segment file that failed validation.
type BadSegment struct {
	Path string
	Err  error
}

// Segments lists the valid segments sorted by first LSN, and the files with
// the segment extension that are not valid segments. Temporary files of an
// archiver that is running (or was killed) never have the extension.
func (a *Archive) Segments() ([]Segment, []BadSegment, error) {
	ents, err := a.FS.ReadDir(a.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read archive %s: %w", a.Dir, err)
	}
	var segs []Segment
	var bad []BadSegment
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), Ext) {
			continue
		}
		path := filepath.Join(a.Dir, e.Name())
		s, err := a.readSegmentInfo(path)
		if err != nil {
			bad = append(bad, BadSegment{Path: path, Err: err})
			continue
		}
		segs = append(segs, s)
	}
	slices.SortFunc(segs, func(x, y Segment) int {
		if x.FirstLSN != y.FirstLSN {
			return cmp.Compare(x.FirstLSN, y.FirstLSN)
		}
		return cmp.Compare(x.LastLSN, y.LastLSN)
	})
	return segs, bad, nil
}

func (a *Archive) readSegmentInfo(path string) (Segment, error) {
	f, err := a.FS.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return Segment{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Segment{}, err
	}
	hb := make([]byte, HeaderSize)
	if _, err := f.ReadAt(hb, 0); err != nil {
		return Segment{}, fmt.Errorf("%w: %s: short file", ErrBadSegment, path)
	}
	h, err := DecodeHeader(hb)
	if err != nil {
		return Segment{}, fmt.Errorf("%s: %w", path, err)
	}
	minSize := int64(HeaderSize + trailerSize)
	if h.Sealed {
		minSize += AuthSize
	}
	if st.Size() < minSize {
		return Segment{}, fmt.Errorf("%s: %w: short file", path, ErrBadSegment)
	}
	tb := make([]byte, trailerSize)
	if _, err := f.ReadAt(tb, st.Size()-trailerSize); err != nil {
		return Segment{}, fmt.Errorf("%s: %w", path, err)
	}
	t, err := decodeTrailer(tb)
	if err != nil {
		return Segment{}, fmt.Errorf("%s: %w", path, err)
	}
	if int(t.txs) != h.Txs {
		return Segment{}, fmt.Errorf("%s: %w: trailer counts %d transactions, header %d", path, ErrBadSegment, t.txs, h.Txs)
	}
	s := Segment{Header: h, Path: path, Size: st.Size()}
	if h.Sealed {
		ab := make([]byte, AuthSize)
		if _, err := f.ReadAt(ab, s.bodyEnd()); err != nil {
			return Segment{}, fmt.Errorf("%s: %w", path, err)
		}
		if _, err := decodeAuth(ab); err != nil {
			return Segment{}, fmt.Errorf("%s: %w", path, err)
		}
	}
	return s, nil
}

// LastLSN returns the highest archived LSN of a database (0 if none).
func (a *Archive) LastLSN(fileID uint64) (common.LSN, error) {
	segs, _, err := a.Segments()
	if err != nil {
		return 0, err
	}
	var last common.LSN
	for _, s := range segs {
		if s.FileID == fileID {
			last = max(last, s.LastLSN)
		}
	}
	return last, nil
}

// Source is a log whose committed frames are to be archived.
type Source struct {
	R        wal.ReaderAt
	Header   wal.Header
	Frames   []wal.Frame // committed frames, from frame 0 of the log
	PageSize int
	// Recheck re-reads each frame's own header and checks its salt, page
	// and LSN: set it when the log may be reset while it is read.
	Recheck bool
	Path    string // for error messages
}

// Result reports what archiving did.
type Result struct {
	Segments []string   `json:"segments"`
	FirstLSN common.LSN `json:"first_lsn"`
	LastLSN  common.LSN `json:"last_lsn"`
	Txs      int        `json:"transactions"`
	Frames   int        `json:"frames"`
	Skipped  int        `json:"skipped_transactions"` // already archived
}

type txRange struct {
	from, to int // frame indexes [from, to)
	lsn      common.LSN
	ts       int64
}

func groupTxs(frames []wal.Frame) []txRange {
	var out []txRange
	start := 0
	for i, f := range frames {
		if f.Commit {
			out = append(out, txRange{from: start, to: i + 1, lsn: f.LSN, ts: f.CommitTS})
			start = i + 1
		}
	}
	return out
}

// ArchiveIndex archives the committed frames of an open log (the pager's
// BeforeRestart hook). Frames the archive already holds are skipped.
func (a *Archive) ArchiveIndex(fileID uint64, ix *wal.Index, f wal.ReaderAt, pageSize int, path string) (Result, error) {
	if !ix.Valid || ix.MaxFrame == 0 {
		return Result{}, nil
	}
	return a.Append(fileID, Source{R: f, Header: ix.Header, Frames: ix.Frames[:ix.MaxFrame], PageSize: pageSize, Path: path})
}

// ArchiveWALFile reads the log at walPath itself (without the pager) and
// archives its committed transactions. It takes no database lock: frames
// are validated by the log's checksum chain and rechecked as they are
// copied, so a log reset underneath yields ErrLogReset, never bad data.
func (a *Archive) ArchiveWALFile(walPath string, fileID uint64, pageSize int) (Result, error) {
	f, err := a.FS.OpenFile(walPath, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return Result{}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("open %s: %w", walPath, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Result{}, err
	}
	if st.Size() < wal.HeaderSize {
		return Result{}, nil
	}
	hb := make([]byte, wal.HeaderSize)
	if _, err := f.ReadAt(hb, 0); err != nil {
		return Result{}, fmt.Errorf("read %s: %w", walPath, err)
	}
	h, err := wal.DecodeHeader(hb)
	if err != nil || h.FileID != fileID || int(h.PageSize) != pageSize {
		return Result{}, nil // nothing of this database's in it
	}
	ix := wal.NewIndex(h, true, pageSize)
	if _, err := ix.Scan(f, st.Size()); err != nil {
		return Result{}, err
	}
	return a.Append(fileID, Source{R: f, Header: h, Frames: ix.Frames[:ix.MaxFrame], PageSize: pageSize, Recheck: true, Path: walPath})
}

// Append archives the complete committed transactions of src whose LSN is
// above the highest archived one. It is idempotent, and serialised with
// other archivers by a lock in the directory.
func (a *Archive) Append(fileID uint64, src Source) (Result, error) {
	var res Result
	txs := groupTxs(src.Frames)
	if len(txs) == 0 {
		return res, nil
	}
	if a.Sealed && a.Cipher == nil {
		return res, fmt.Errorf("archive %s into %s: %w", src.Path, a.Dir, ErrKeyRequired)
	}
	if err := vfs.MkdirAllDurable(a.FS, a.Dir); err != nil {
		return res, fmt.Errorf("create archive %s: %w", a.Dir, err)
	}
	unlock, err := dirlock.Lock(a.FS, a.Dir, a.LockTimeout)
	if err != nil {
		return res, err
	}
	defer unlock()
	segs, _, err := a.Segments()
	if err != nil {
		return res, err
	}
	var archived common.LSN
	first, last := txs[0].lsn, txs[len(txs)-1].lsn
	for _, s := range segs {
		if s.FileID == fileID {
			if err := a.checkKind(s); err != nil {
				return res, fmt.Errorf("archive into %s: %w (archive into a new directory)", a.Dir, err)
			}
			archived = max(archived, s.LastLSN)
		} else if s.FirstLSN <= last && s.LastLSN >= first {
			return res, fmt.Errorf("%s: LSNs %d-%d are archived for database file %016x, this is %016x: %w",
				a.Dir, s.FirstLSN, s.LastLSN, s.FileID, fileID, ErrForeign)
		}
	}
	// The newest transaction both in the log and in the archive must be
	// the same one; if its commit time differs the history forked.
	if archived >= first {
		check := min(archived, last)
		for _, t := range txs {
			if t.lsn != check {
				continue
			}
			ts, ok, err := a.commitTimeIn(segs, fileID, check, false)
			if err != nil {
				return res, err
			}
			if ok && ts != t.ts {
				return res, fmt.Errorf("%s: LSN %d committed at %s in the log but at %s in the archive %s (database restored or replaced?): %w",
					src.Path, check, fmtTS(t.ts), fmtTS(ts), a.Dir, ErrTimeline)
			}
			break
		}
	}
	var todo []txRange
	for _, t := range txs {
		if t.lsn <= archived {
			res.Skipped++
			continue
		}
		todo = append(todo, t)
	}
	// A sealed segment records the digest of the one it follows. Best
	// effort: a predecessor whose seal does not open (damaged, another key)
	// is reported by every reader of it; the new segment starts a chain.
	var prev []byte
	if len(todo) > 0 && a.Sealed {
		if p := predecessor(segs, fileID, todo[0].lsn); p != nil {
			prev, _ = a.sealedDigest(*p)
		}
	}
	// One segment per run of consecutive LSNs.
	for len(todo) > 0 {
		n := 1
		for n < len(todo) && todo[n].lsn == todo[n-1].lsn+1 {
			n++
		}
		name, frames, digest, err := a.writeSegment(fileID, src, todo[:n], prev)
		if err != nil {
			return res, err
		}
		prev = digest
		if res.FirstLSN == 0 {
			res.FirstLSN = todo[0].lsn
		}
		res.LastLSN = todo[n-1].lsn
		res.Segments = append(res.Segments, name)
		res.Txs += n
		res.Frames += frames
		todo = todo[n:]
	}
	return res, nil
}

func fmtTS(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// writeSegment writes txs as one segment and returns its name, its frame
// count and, sealed, its digest; prev is the digest of the segment it
// follows (nil: none).
func (a *Archive) writeSegment(fileID uint64, src Source, txs []txRange, prev []byte) (string, int, []byte, error) {
	ps := src.PageSize
	tmp := filepath.Join(a.Dir, fmt.Sprintf(".segment-%d-%d.tmp", os.Getpid(), time.Now().UnixNano()))
	f, err := a.FS.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", 0, nil, fmt.Errorf("create %s: %w", tmp, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			a.FS.Remove(tmp)
		}
	}()
	h := Header{PageSize: ps, FileID: fileID, FirstLSN: txs[0].lsn, LastLSN: txs[len(txs)-1].lsn,
		FirstTime: txs[0].ts, LastTime: txs[len(txs)-1].ts, Txs: len(txs), Sealed: a.Sealed}
	hb := h.encode()
	// A sealed segment's digest covers every byte but the sealed digest
	// itself, in file order.
	digest := sha256.New()
	digest.Write(hb)
	w := vfs.NewSeqWriter(f, HeaderSize)
	w.Checksum = true
	write := func(b []byte) error {
		if a.Sealed {
			digest.Write(b)
		}
		return w.Write(b)
	}
	fsz := int(wal.FrameSize(ps))
	frame := make([]byte, fsz)
	var rec = make([]byte, frameHdr)
	var th [txHdrSize]byte
	var scratch []byte
	frames := 0
	for _, t := range txs {
		TxHeader{LSN: t.lsn, CommitTS: t.ts, Frames: t.to - t.from}.encode(th[:])
		if err := write(th[:]); err != nil {
			return "", 0, nil, fmt.Errorf("write %s: %w", tmp, err)
		}
		for i := t.from; i < t.to; i++ {
			fr := src.Frames[i]
			img := frame[wal.FrameHeaderSize:]
			if src.Recheck {
				if _, err := src.R.ReadAt(frame, wal.FrameOffset(ps, i)); err != nil {
					return "", 0, nil, fmt.Errorf("read %s frame %d: %w", src.Path, i, err)
				}
				le := binary.LittleEndian
				if le.Uint64(frame[40:]) != src.Header.Salt || common.PageID(le.Uint64(frame[0:])) != fr.Page || common.LSN(le.Uint64(frame[8:])) != fr.LSN {
					return "", 0, nil, fmt.Errorf("%s frame %d: %w", src.Path, i, ErrLogReset)
				}
			} else if err := wal.ReadPage(src.R, ps, i, img); err != nil {
				return "", 0, nil, err
			}
			// The WAL of an encrypted database holds sealed images: they
			// are archived as they are, once they open and check out.
			pg, good := img, true
			if a.Sealed && fr.Page != 0 {
				pg, good = openImage(a.Cipher, fr.Page, img, &scratch)
			}
			if !good || !page.Verify(pg) || page.LSN(pg) != fr.LSN {
				if src.Recheck {
					return "", 0, nil, fmt.Errorf("%s frame %d: %w", src.Path, i, ErrLogReset)
				}
				return "", 0, nil, &common.CorruptionError{Path: src.Path, Page: fr.Page, Offset: wal.FrameOffset(ps, i), Reason: fmt.Sprintf("checksum mismatch in WAL frame %d while archiving", i)}
			}
			binary.LittleEndian.PutUint64(rec[0:], uint64(fr.Page))
			binary.LittleEndian.PutUint32(rec[8:], common.ChecksumUpdate(common.Checksum(rec[:8]), img))
			if err := write(rec); err != nil {
				return "", 0, nil, fmt.Errorf("write %s: %w", tmp, err)
			}
			if err := write(img); err != nil {
				return "", 0, nil, fmt.Errorf("write %s: %w", tmp, err)
			}
			frames++
		}
	}
	w.Checksum = false
	tb := trailer{frames: uint64(frames), bodySum: w.Sum, txs: uint32(len(txs))}.encode()
	var sum []byte
	if a.Sealed {
		ab, err := newAuth(a.Cipher)
		if err != nil {
			return "", 0, nil, err
		}
		digest.Write(ab)
		digest.Write(tb)
		sum = digest.Sum(nil)
		ab = append(ab, sealDigests(a.Cipher, sum, prev)...)
		if err := w.Write(ab); err != nil {
			return "", 0, nil, fmt.Errorf("write %s: %w", tmp, err)
		}
	}
	if err := w.Write(tb); err != nil {
		return "", 0, nil, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := w.Flush(); err != nil {
		return "", 0, nil, fmt.Errorf("write %s: %w", tmp, err)
	}
	if _, err := f.WriteAt(hb, 0); err != nil {
		return "", 0, nil, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return "", 0, nil, fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return "", 0, nil, err
	}
	name := SegmentName(h.FirstLSN, h.LastLSN)
	if err := a.FS.Rename(tmp, filepath.Join(a.Dir, name)); err != nil {
		return "", 0, nil, fmt.Errorf("rename %s: %w", tmp, err)
	}
	ok = true
	if err := a.FS.SyncDir(a.Dir); err != nil {
		return "", 0, nil, fmt.Errorf("fsync %s: %w", a.Dir, err)
	}
	return name, frames, sum, nil
}

// openImage opens the sealed image of page pg with c and reports whether
// it opened. It opens a copy in *scratch (reused): a PageCipher may open in
// place, and img is what is stored.
func openImage(c Cipher, pg common.PageID, img []byte, scratch *[]byte) ([]byte, bool) {
	*scratch = append((*scratch)[:0], img...)
	b, err := c.Open(uint64(pg), *scratch)
	return b, err == nil && len(b) == len(img)-c.Overhead()
}

// segReader reads a segment's transactions in order.
type segReader struct {
	f       vfs.File
	seg     Segment
	off     int64
	left    int
	cipher  Cipher // opens the frames of a sealed segment
	scratch []byte // reused to open images
	// digest and prev are a sealed segment's authenticated digest and
	// that of the segment it follows (all zero: none).
	digest, prev []byte
}

// predecessor returns the segment of fileID that ends at LSN first-1.
func predecessor(segs []Segment, fileID uint64, first common.LSN) *Segment {
	for i := range segs {
		if segs[i].FileID == fileID && segs[i].LastLSN+1 == first {
			return &segs[i]
		}
	}
	return nil
}

// sealedDigest returns the digest sealed in s's authenticator, without
// reading the rest of s: what a segment following s records.
func (a *Archive) sealedDigest(s Segment) ([]byte, error) {
	if !s.Sealed {
		return nil, fmt.Errorf("%s: %w", s.Path, ErrMixed)
	}
	if a.Cipher == nil {
		return nil, fmt.Errorf("%s: %w", s.Path, ErrKeyRequired)
	}
	f, err := a.FS.OpenFile(s.Path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ab := make([]byte, AuthSize)
	if _, err := f.ReadAt(ab, s.bodyEnd()); err != nil {
		return nil, fmt.Errorf("read %s: %w", s.Path, err)
	}
	au, err := decodeAuth(ab)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Path, err)
	}
	if err := au.checkKey(a.Cipher); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Path, err)
	}
	d, _, ok := au.open(a.Cipher)
	if !ok {
		return nil, &common.CorruptionError{Path: s.Path, Page: 0, Offset: s.bodyEnd(), Reason: "sealed segment fails authentication (altered, cut short or replaced)"}
	}
	return d, nil
}

// checkFollows fails unless sealed segment r records prev (the digest of
// the segment p before it) as its predecessor. A segment that records none
// started a chain (archiving began there, or its predecessor was damaged).
func (r *segReader) checkFollows(p *Segment, prev []byte) error {
	if r.prev == nil || noPrev(r.prev) || sameDigest(r.prev, prev) {
		return nil
	}
	return r.corrupt(r.seg.bodyEnd(), 0, fmt.Sprintf("sealed segment does not follow %s (from another history of the database?)", filepath.Base(p.Path)))
}

// openSegment opens s for reading. A sealed segment is authenticated as a
// whole first, so nothing of an altered one is ever used; forDB says s is
// read as the history of the archive's database (Sealed must match).
func (a *Archive) openSegment(s Segment, forDB bool) (*segReader, error) {
	if forDB {
		if err := a.checkKind(s); err != nil {
			return nil, err
		}
	}
	if s.Sealed && a.Cipher == nil {
		return nil, fmt.Errorf("%s: %w", s.Path, ErrKeyRequired)
	}
	f, err := a.FS.OpenFile(s.Path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	r := &segReader{f: f, seg: s, off: HeaderSize, left: s.Txs}
	if s.Sealed {
		r.cipher = a.Cipher
		if err := r.authenticate(); err != nil {
			f.Close()
			return nil, err
		}
	}
	return r, nil
}

// authenticate checks the key, then the sealed digest of the whole file.
func (r *segReader) authenticate() error {
	s := r.seg
	ab := make([]byte, AuthSize)
	tb := make([]byte, trailerSize)
	if _, err := r.f.ReadAt(ab, s.bodyEnd()); err != nil {
		return r.corrupt(s.bodyEnd(), 0, "sealed segment truncated (no authenticator)")
	}
	if _, err := r.f.ReadAt(tb, s.bodyEnd()+AuthSize); err != nil {
		return r.corrupt(s.bodyEnd()+AuthSize, 0, "sealed segment truncated (no trailer)")
	}
	au, err := decodeAuth(ab)
	if err != nil {
		return r.corrupt(s.bodyEnd(), 0, err.Error())
	}
	if err := au.checkKey(r.cipher); err != nil {
		return fmt.Errorf("%s: %w", s.Path, err)
	}
	h := sha256.New()
	if n, err := io.Copy(h, io.NewSectionReader(r.f, 0, s.bodyEnd())); err != nil || n != s.bodyEnd() {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("read %s: %w", s.Path, err)
	}
	h.Write(ab[:8+page.KeyCheckSize])
	h.Write(tb)
	sum := h.Sum(nil)
	digest, prev, ok := au.open(r.cipher)
	if !ok || !sameDigest(digest, sum) {
		return r.corrupt(s.bodyEnd(), 0, "sealed segment fails authentication (altered, cut short or replaced)")
	}
	r.digest, r.prev = sum, prev
	return nil
}

func (r *segReader) close() { r.f.Close() }

func (r *segReader) corrupt(off int64, pg common.PageID, reason string) error {
	return &common.CorruptionError{Path: r.seg.Path, Page: pg, Offset: off, Reason: reason}
}

// next returns the next transaction header, or ok false at the end.
func (r *segReader) next() (TxHeader, bool, error) {
	if r.left == 0 {
		return TxHeader{}, false, nil
	}
	var b [txHdrSize]byte
	if r.off+txHdrSize > r.seg.bodyEnd() {
		return TxHeader{}, false, r.corrupt(r.off, 0, "truncated transaction header")
	}
	if _, err := r.f.ReadAt(b[:], r.off); err != nil {
		return TxHeader{}, false, r.corrupt(r.off, 0, "truncated transaction header")
	}
	t, ok := decodeTxHeader(b[:])
	if !ok {
		return TxHeader{}, false, r.corrupt(r.off, 0, "transaction header checksum mismatch")
	}
	if t.Frames <= 0 || t.Frames > 1<<24 {
		return TxHeader{}, false, r.corrupt(r.off, 0, fmt.Sprintf("transaction header claims %d frames", t.Frames))
	}
	r.off += txHdrSize
	r.left--
	return t, true, nil
}

func (r *segReader) skip(t TxHeader) {
	r.off += int64(t.Frames) * int64(frameHdr+r.seg.PageSize)
}

// frames reads and verifies the frames of t, calling fn with each image
// as stored (sealed in a sealed segment; it is checked opened).
func (r *segReader) frames(t TxHeader, buf []byte, fn func(common.PageID, []byte) error) error {
	ps := r.seg.PageSize
	buf = buf[:frameHdr+ps]
	for i := 0; i < t.Frames; i++ {
		if r.off+int64(len(buf)) > r.seg.bodyEnd() {
			return r.corrupt(r.off, 0, "segment truncated")
		}
		if _, err := r.f.ReadAt(buf, r.off); err != nil {
			if errors.Is(err, io.EOF) {
				return r.corrupt(r.off, 0, "segment truncated")
			}
			return fmt.Errorf("read %s: %w", r.seg.Path, err)
		}
		pg := common.PageID(binary.LittleEndian.Uint64(buf[0:]))
		img := buf[frameHdr:]
		if binary.LittleEndian.Uint32(buf[8:]) != common.ChecksumUpdate(common.Checksum(buf[:8]), img) {
			return r.corrupt(r.off, pg, fmt.Sprintf("frame checksum mismatch (LSN %d)", t.LSN))
		}
		plain := img
		if r.cipher != nil && pg != 0 {
			var good bool
			if plain, good = openImage(r.cipher, pg, img, &r.scratch); !good {
				return r.corrupt(r.off, pg, fmt.Sprintf("sealed page image does not open (LSN %d)", t.LSN))
			}
		}
		if !page.Verify(plain) || page.LSN(plain) != t.LSN {
			return r.corrupt(r.off, pg, fmt.Sprintf("page image invalid (LSN %d)", t.LSN))
		}
		if err := fn(pg, img); err != nil {
			return err
		}
		r.off += int64(frameHdr + ps)
	}
	return nil
}

// commitTimeIn finds the commit time of lsn in segs. The header's times
// answer for a segment's first and last transaction when trustHeader is
// set (archiving's timeline check); otherwise a sealed segment is
// authenticated first, like every read of a restore.
func (a *Archive) commitTimeIn(segs []Segment, fileID uint64, lsn common.LSN, trustHeader bool) (int64, bool, error) {
	for _, s := range segs {
		if s.FileID != fileID || lsn < s.FirstLSN || lsn > s.LastLSN {
			continue
		}
		if trustHeader || !s.Sealed {
			if lsn == s.FirstLSN {
				return s.FirstTime, true, nil
			}
			if lsn == s.LastLSN {
				return s.LastTime, true, nil
			}
		}
		r, err := a.openSegment(s, true)
		if err != nil {
			return 0, false, err
		}
		defer r.close()
		for {
			t, ok, err := r.next()
			if err != nil || !ok {
				return 0, false, err
			}
			if t.LSN == lsn {
				return t.CommitTS, true, nil
			}
			r.skip(t)
		}
	}
	return 0, false, nil
}

// CommitTime returns the commit time of an archived transaction.
func (a *Archive) CommitTime(fileID uint64, lsn common.LSN) (int64, bool, error) {
	segs, _, err := a.Segments()
	if err != nil {
		return 0, false, err
	}
	return a.commitTimeIn(segs, fileID, lsn, false)
}

// GapError says that the archive misses transactions after After.
type GapError struct {
	Dir       string
	After     common.LSN // last LSN reachable without a hole
	AfterTime int64      // its commit time (0 if unknown)
	Next      common.LSN // first LSN archived after the hole (0: none)
	NextTime  int64
	Bad       []BadSegment // damaged segment files that may explain the hole
}

func (e *GapError) Error() string {
	s := fmt.Sprintf("%s: archive has a gap after LSN %d", e.Dir, e.After)
	if e.AfterTime != 0 {
		s += fmt.Sprintf(" (committed %s)", fmtTS(e.AfterTime))
	}
	s += fmt.Sprintf(": LSNs %d-%d are missing", e.After+1, e.Next-1)
	if e.NextTime != 0 {
		s += fmt.Sprintf(" (the archive resumes at LSN %d, committed %s)", e.Next, fmtTS(e.NextTime))
	}
	if len(e.Bad) > 0 {
		s += fmt.Sprintf("; damaged segment %s: %v", e.Bad[0].Path, e.Bad[0].Err)
	}
	return s
}

// Walk visits the archived transactions of fileID with LSN > after in LSN
// order, without reading page images. fn returns false to stop. When the
// next LSN is missing but later ones exist, Walk returns a *GapError; when
// the archive simply ends, it returns nil.
func (a *Archive) Walk(fileID uint64, after common.LSN, afterTime int64, fn func(TxHeader) (bool, error)) error {
	return a.iterate(fileID, after, afterTime, func(r *segReader, t TxHeader) (bool, error) {
		more, err := fn(t)
		r.skip(t)
		return more, err
	})
}

// Replay reads the archived transactions of fileID with LSNs in
// (after, upto] in order and calls fn with every page image (verified);
// end, if not nil, is called after each transaction's last frame.
func (a *Archive) Replay(fileID uint64, after, upto common.LSN, fn func(t TxHeader, pg common.PageID, img []byte) error, end func(TxHeader) error) error {
	if upto <= after {
		return nil
	}
	var buf []byte
	reached := after
	err := a.iterate(fileID, after, 0, func(r *segReader, t TxHeader) (bool, error) {
		if t.LSN > upto {
			return false, nil
		}
		if len(buf) < frameHdr+r.seg.PageSize {
			buf = make([]byte, frameHdr+r.seg.PageSize)
		}
		if err := r.frames(t, buf, func(pg common.PageID, img []byte) error { return fn(t, pg, img) }); err != nil {
			return false, err
		}
		if end != nil {
			if err := end(t); err != nil {
				return false, err
			}
		}
		reached = t.LSN
		return t.LSN < upto, nil
	})
	if err != nil {
		return err
	}
	if reached < upto {
		return fmt.Errorf("%s: archive ends at LSN %d before LSN %d: %w", a.Dir, reached, upto, common.ErrNotFound)
	}
	return nil
}

func (a *Archive) iterate(fileID uint64, after common.LSN, afterTime int64, fn func(*segReader, TxHeader) (bool, error)) error {
	segs, bad, err := a.Segments()
	if err != nil {
		return err
	}
	cur, curTime := after, afterTime
	var last *segReader // the sealed segment read before, authenticated
	for _, s := range segs {
		if s.FileID != fileID || s.LastLSN <= cur {
			continue
		}
		if s.FirstLSN > cur+1 {
			return &GapError{Dir: a.Dir, After: cur, AfterTime: curTime, Next: s.FirstLSN, NextTime: s.FirstTime, Bad: bad}
		}
		r, err := a.openSegment(s, true)
		if err != nil {
			return err
		}
		if s.Sealed {
			if err := a.checkChain(r, segs, last); err != nil {
				r.close()
				return err
			}
			last = r
		}
		stop, err := func() (bool, error) {
			defer r.close()
			for {
				t, ok, err := r.next()
				if err != nil {
					return true, err
				}
				if !ok {
					return false, nil
				}
				if t.LSN <= cur {
					r.skip(t)
					continue
				}
				if t.LSN != cur+1 {
					return true, r.corrupt(r.off, 0, fmt.Sprintf("transaction LSN %d follows %d", t.LSN, cur))
				}
				more, err := fn(r, t)
				if err != nil || !more {
					return true, err
				}
				cur, curTime = t.LSN, t.CommitTS
			}
		}()
		if err != nil || stop {
			return err
		}
	}
	return nil
}

// checkChain checks that sealed segment r follows its predecessor: last
// when that is the one before it, else the predecessor in segs, which is
// then authenticated as a whole (a replay that starts at r reads nothing
// else of it). With no predecessor (pruned, or archiving began at r) there
// is nothing to check.
func (a *Archive) checkChain(r *segReader, segs []Segment, last *segReader) error {
	if last != nil && last.seg.LastLSN+1 == r.seg.FirstLSN {
		return r.checkFollows(&last.seg, last.digest)
	}
	p := predecessor(segs, r.seg.FileID, r.seg.FirstLSN)
	if p == nil || noPrev(r.prev) {
		return nil
	}
	pr, err := a.openSegment(*p, true)
	if err != nil {
		return err
	}
	pr.close()
	return r.checkFollows(p, pr.digest)
}

// Verify reads a whole segment and checks every checksum, including the
// body checksum in the trailer; a sealed segment is authenticated and each
// page image opened with the archive's Cipher (ErrKeyRequired without one,
// ErrWrongKey with another key's).
func (a *Archive) Verify(s Segment) error {
	r, err := a.openSegment(s, false)
	if err != nil {
		return err
	}
	defer r.close()
	sum := uint32(0)
	buf := make([]byte, frameHdr+s.PageSize)
	frames := 0
	var prev common.LSN
	for {
		start := r.off
		t, ok, err := r.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if (prev != 0 && t.LSN != prev+1) || (prev == 0 && t.LSN != s.FirstLSN) {
			return r.corrupt(start, 0, fmt.Sprintf("transaction LSN %d follows %d (the segment starts at %d)", t.LSN, prev, s.FirstLSN))
		}
		prev = t.LSN
		var th [txHdrSize]byte
		t.encode(th[:])
		sum = common.ChecksumUpdate(sum, th[:])
		if err := r.frames(t, buf, func(common.PageID, []byte) error {
			sum = common.ChecksumUpdate(sum, buf[:frameHdr+s.PageSize])
			frames++
			return nil
		}); err != nil {
			return err
		}
	}
	if prev != s.LastLSN || r.off != s.bodyEnd() {
		return r.corrupt(r.off, 0, fmt.Sprintf("segment body ends at LSN %d, offset %d; the header says LSN %d, the file %d", prev, r.off, s.LastLSN, s.bodyEnd()))
	}
	tb := make([]byte, trailerSize)
	if _, err := r.f.ReadAt(tb, s.Size-trailerSize); err != nil {
		return r.corrupt(s.Size-trailerSize, 0, "missing trailer")
	}
	tr, err := decodeTrailer(tb)
	if err != nil {
		return r.corrupt(s.Size-trailerSize, 0, err.Error())
	}
	if tr.bodySum != sum || int(tr.frames) != frames {
		return r.corrupt(r.off, 0, "segment body checksum mismatch")
	}
	if !s.Sealed || noPrev(r.prev) {
		return nil
	}
	// The predecessor's sealed digest is enough here: verifying the
	// archive verifies the predecessor itself too.
	segs, _, err := a.Segments()
	if err != nil {
		return err
	}
	if p := predecessor(segs, s.FileID, s.FirstLSN); p != nil {
		d, err := a.sealedDigest(*p)
		if err != nil {
			return fmt.Errorf("check that %s follows %s: %w", filepath.Base(s.Path), filepath.Base(p.Path), err)
		}
		return r.checkFollows(p, d)
	}
	return nil
}
