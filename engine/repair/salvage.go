package repair

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/btree"
	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/maint"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/progress"
	"github.com/sombradb/sombra/engine/internal/record"
	"github.com/sombradb/sombra/engine/internal/shm"
	"github.com/sombradb/sombra/engine/internal/wal"
	"github.com/sombradb/sombra/engine/vfs"
)

// SalvagedNode is a node read from a leaf page.
type SalvagedNode struct {
	ID         engine.NodeID
	Labels     []string
	Properties engine.Properties
	// Page is the page the record was read from and LSN that page's LSN.
	Page, LSN uint64
	// Damaged is set when the page (or an overflow page of the record)
	// failed its checksum but its layout was intact and the record decoded:
	// the values are probably right, but not proven so.
	Damaged bool
}

// Label returns the node's first label ("" if it has none).
func (n *SalvagedNode) Label() string {
	if len(n.Labels) == 0 {
		return ""
	}
	return n.Labels[0]
}

// SalvagedEdge is an edge read from a leaf page.
type SalvagedEdge struct {
	ID           engine.EdgeID
	FromID, ToID engine.NodeID
	Label        string
	Properties   engine.Properties
	Page, LSN    uint64
	Damaged      bool
}

// SalvageNodes returns every node that can be read from the database's
// pages, in id order. It does not use the trees, so it works on a database
// that cannot be opened; see the package documentation.
func (r *DatabaseRepair) SalvageNodes() ([]SalvagedNode, error) {
	res, err := r.scan(context.Background(), nil)
	if err != nil {
		return nil, err
	}
	return res.sortedNodes(), nil
}

// SalvageEdges returns every edge that can be read from the database's
// pages, in id order, whether or not its endpoints were salvaged.
func (r *DatabaseRepair) SalvageEdges() ([]SalvagedEdge, error) {
	res, err := r.scan(context.Background(), nil)
	if err != nil {
		return nil, err
	}
	return res.sortedEdges(), nil
}

// maxListed caps the page numbers listed in a report.
const maxListed = 100

// scanResult is everything a salvage scan found.
type scanResult struct {
	pageSize       int
	meta           *page.Meta // newest header with a valid checksum, or nil
	pages          uint64     // pages scanned
	walFrames      int        // committed WAL frames used
	nodes          map[uint64]*SalvagedNode
	edges          map[uint64]*SalvagedEdge
	indexes        map[string]bool
	damaged        []uint64 // pages in use (not free) that failed their checksum or are missing
	damagedCount   int
	unreadable     []uint64 // leaf pages no record could be read from
	undecodable    int      // cells whose record did not decode
	warnings       []string
	headerReadable bool
}

func (s *scanResult) sortedNodes() []SalvagedNode {
	out := make([]SalvagedNode, 0, len(s.nodes))
	for _, n := range s.nodes {
		out = append(out, *n)
	}
	slices.SortFunc(out, func(a, b SalvagedNode) int { return cmp.Compare(uint64(a.ID), uint64(b.ID)) })
	return out
}

func (s *scanResult) sortedEdges() []SalvagedEdge {
	out := make([]SalvagedEdge, 0, len(s.edges))
	for _, e := range s.edges {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b SalvagedEdge) int { return cmp.Compare(uint64(a.ID), uint64(b.ID)) })
	return out
}

// source reads page images of a database without the pager: the newest
// committed WAL frame of a page if its checksum holds, else the file's copy.
type source struct {
	path   string
	db     vfs.File
	size   int64
	ps     int
	walf   vfs.File
	frames map[common.PageID][]int // committed WAL frames per page, ascending
	cipher engine.PageCipher       // opens sealed pages of an encrypted file (nil: plaintext)
}

// open returns the plaintext of on-disk image b of page id and whether it
// verifies: sealed pages of an encrypted file are opened first (a page
// that does not open counts as damaged).
func (s *source) open(id common.PageID, b []byte) ([]byte, bool) {
	if s.cipher == nil || id == 0 {
		return b, page.Verify(b)
	}
	pt, err := s.cipher.Open(uint64(id), b)
	if err != nil || len(pt) != s.ps-s.cipher.Overhead() {
		return b[:s.ps-s.cipher.Overhead()], false
	}
	return pt, page.Verify(pt)
}

func (s *source) close() {
	s.db.Close()
	if s.walf != nil {
		s.walf.Close()
	}
}

// image returns the best image of page id and whether its checksum holds.
// A page that exists nowhere (past the end of a truncated file) gives nil.
func (s *source) image(id common.PageID) ([]byte, bool, error) {
	var walImg []byte
	var walLSN common.LSN
	if fs := s.frames[id]; len(fs) > 0 {
		for i := len(fs) - 1; i >= 0; i-- {
			b := make([]byte, s.ps)
			if err := wal.ReadPage(s.walf, s.ps, fs[i], b); err != nil {
				continue
			}
			if pt, ok := s.open(id, b); ok {
				walImg, walLSN = pt, page.LSN(pt)
				break
			}
		}
	}
	b := make([]byte, s.ps)
	n, err := s.db.ReadAt(b, int64(id)*int64(s.ps))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, fmt.Errorf("read %s page %d: %w", s.path, id, err)
	}
	raw := b
	b, fileOK := s.open(id, raw)
	fileOK = fileOK && n == s.ps
	if s.cipher != nil && id != 0 && !fileOK && n > 0 {
		// Damaged or cut short: nothing of a sealed page is readable.
		clear(b)
	}
	switch {
	case walImg != nil && (!fileOK || walLSN >= page.LSN(b)):
		return walImg, true, nil
	case fileOK:
		return b, true, nil
	case n > 0:
		return b, false, nil // damaged or cut short (the rest is zero)
	}
	return nil, false, nil
}

// openSource opens the database file and its WAL for salvage and finds the
// page size (from the header, or by probing when the header is damaged).
func openSource(fsys vfs.FS, path string, res *scanResult, cipher engine.PageCipher) (*source, error) {
	if err := maint.CheckFile(fsys, path); err != nil {
		return nil, err
	}
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &source{path: path, db: f, size: st.Size(), frames: map[common.PageID][]int{}}
	if s.ps, res.meta, err = pageSize(f, s.size, path); err != nil {
		f.Close()
		return nil, err
	}
	res.pageSize = s.ps
	res.headerReadable = res.meta != nil
	if err := s.setCipher(res.meta, cipher); err != nil {
		f.Close()
		return nil, err
	}
	if !res.headerReadable {
		res.warnings = append(res.warnings, fmt.Sprintf("the header is damaged; page size %d found by probing", s.ps))
	}
	s.openWAL(fsys, res)
	// The WAL may hold a newer header.
	if len(s.frames[0]) > 0 {
		if b, ok, err := s.image(0); err == nil && ok {
			if m, err := page.DecodeMeta(b); err == nil {
				res.meta = m
			}
		}
	}
	return s, nil
}

// pageSize reads the header; when its checksum fails it probes the page
// sizes for the one under which the most pages verify.
func pageSize(f vfs.File, size int64, path string) (int, *page.Meta, error) {
	hdr := make([]byte, min(size, 1<<16))
	if _, err := f.ReadAt(hdr, 0); err != nil && !errors.Is(err, io.EOF) {
		return 0, nil, fmt.Errorf("read %s: %w", path, err)
	}
	prefer := 0
	if m, err := page.DecodeMeta(hdr); err == nil {
		if ps := int(m.PageSize); ps <= len(hdr) && page.Verify(hdr[:ps]) {
			return ps, m, nil
		}
		prefer = int(m.PageSize)
	}
	best, bestN := page.ProbePageSize(f, size, prefer)
	if bestN == 0 {
		return 0, nil, fmt.Errorf("%s: no page verifies under any page size: %w", path, engine.ErrNotADatabase)
	}
	return best, nil, nil
}

// openWAL indexes the WAL's committed frames, if the WAL belongs here.
func (s *source) openWAL(fsys vfs.FS, res *scanResult) {
	f, err := fsys.OpenFile(s.path+"-wal", os.O_RDONLY, 0)
	if err != nil {
		return
	}
	st, err := f.Stat()
	if err != nil || st.Size() < wal.HeaderSize {
		f.Close()
		return
	}
	hb := make([]byte, wal.HeaderSize)
	if _, err := f.ReadAt(hb, 0); err != nil {
		f.Close()
		return
	}
	h, err := wal.DecodeHeader(hb)
	switch {
	case err != nil:
		res.warnings = append(res.warnings, fmt.Sprintf("the WAL header is damaged (%v); the WAL was not used", err))
	case int(h.PageSize) != s.ps:
		res.warnings = append(res.warnings, fmt.Sprintf("the WAL has page size %d, the database %d; the WAL was not used", h.PageSize, s.ps))
	case res.meta != nil && h.FileID != res.meta.FileID:
		res.warnings = append(res.warnings, "the WAL belongs to another database file; it was not used")
	default:
		ix := wal.NewIndex(h, true, s.ps)
		rep, err := ix.Scan(f, st.Size())
		if err != nil {
			res.warnings = append(res.warnings, fmt.Sprintf("reading the WAL: %v", err))
		}
		for i := 0; i < ix.MaxFrame; i++ {
			pg := ix.Frames[i].Page
			s.frames[pg] = append(s.frames[pg], i)
		}
		res.walFrames = ix.MaxFrame
		if rep.Uncommitted > 0 || len(rep.CorruptFrames) > 0 {
			res.warnings = append(res.warnings, "frames of a torn transaction at the end of the WAL were not used (it never committed)")
		}
		s.walf = f
		return
	}
	f.Close()
}

// lockSource keeps the files still while their raw pages are read: it
// holds the writer and checkpoint locks (nothing is appended to the WAL or
// copied into the database file) and the open lock shared (compaction and
// restore, which replace the file, wait). Readers may go on. Without a
// coordination file (a read-only directory) it reads unlocked.
func lockSource(ctx context.Context, fsys vfs.FS, path string, wait time.Duration, res *scanResult) (func(), error) {
	s, err := shm.Open(fsys, path+"-shm")
	if err != nil {
		res.warnings = append(res.warnings, fmt.Sprintf("read without locking the database (%v)", err))
		return func() {}, nil
	}
	for _, l := range []struct {
		b     int64
		excl  bool
		what  common.LockKind
		pidAt int64
	}{
		{shm.LockOpen, false, common.LockExclusive, shm.OffExcl},
		{shm.LockWriter, true, common.LockWriter, shm.OffWriter},
		{shm.LockCkpt, true, common.LockCheckpoint, shm.OffCkpt},
	} {
		if err := s.LockContext(ctx, l.b, l.excl, wait, l.what, l.pidAt, path); err != nil {
			s.Close()
			return nil, fmt.Errorf("salvage %s: %w", path, err)
		}
	}
	return func() { s.Close() }, nil // closing drops every lock
}

// scan reads every page and collects the records; report (if set) gets the
// scan's position scaled to the file's size (see SalvageOptions.Progress).
func (r *DatabaseRepair) scan(ctx context.Context, report func(done, total int64)) (*scanResult, error) {
	res := &scanResult{nodes: map[uint64]*SalvagedNode{}, edges: map[uint64]*SalvagedEdge{}, indexes: map[string]bool{}}
	// The WAL and lock file are those of the real file, as for the engine.
	path, err := vfs.RealPath(r.path)
	if err != nil {
		return nil, err
	}
	src, err := openSource(r.fs(), path, res, r.Encryption)
	if err != nil {
		return nil, err
	}
	defer src.close()
	unlock, err := lockSource(ctx, r.fs(), path, r.Wait, res)
	if err != nil {
		return nil, err
	}
	defer unlock()

	n := uint64((src.size + int64(src.ps) - 1) / int64(src.ps))
	for pg := range src.frames {
		n = max(n, uint64(pg)+1)
	}
	if res.meta != nil {
		n = res.meta.PageCount // pages past the logical end are stale
	}
	res.pages = n
	// Reads: every page, then the leaves again (a guess of half the pages
	// until pass 1 has counted them); reported as a share of the file, so
	// the total is the file's size however many reads it takes.
	size := int64(n) * int64(src.ps)
	var scale func(done, total int64)
	if report != nil {
		scale = func(done, total int64) {
			if total > 0 {
				report(min(int64(float64(done)/float64(total)*float64(size)), size), size)
			}
		}
	}
	tr := progress.New(ctx, scale, int64(n)+int64(n)/2)
	step := func() error { return tr.Add(1) }

	// Pass 1: the free list (from every free-list page, so a damaged header
	// or chain loses nothing), the leaves, the damaged pages.
	free := map[common.PageID]bool{}
	var leaves, bad []common.PageID
	for id := common.PageID(1); uint64(id) < n; id++ {
		if err := step(); err != nil {
			return nil, fmt.Errorf("salvage %s: %w", path, err)
		}
		b, ok, err := src.image(id)
		if err != nil {
			return nil, err
		}
		if !ok {
			bad = append(bad, id)
		}
		if b == nil {
			continue
		}
		switch page.PageType(b) {
		case page.TypeFreeList:
			if !ok {
				continue
			}
			cnt := int(binary.LittleEndian.Uint32(b[24:]))
			if 28+8*cnt > len(b) {
				continue
			}
			free[id] = true
			for i := 0; i < cnt; i++ {
				if e := binary.LittleEndian.Uint64(b[28+8*i:]); e < n {
					free[common.PageID(e)] = true
				}
			}
		case page.TypeLeaf:
			if t := b[13]; t == tagNodes || t == tagEdges || t == tagCatalog {
				leaves = append(leaves, id)
			}
		}
	}
	for _, id := range bad {
		if !free[id] {
			res.damagedCount++
			if len(res.damaged) < maxListed {
				res.damaged = append(res.damaged, uint64(id))
			}
		}
	}
	// Pass 2: records of the leaves in use. A freed leaf keeps its old
	// records on disk; skipping free pages keeps deleted records deleted.
	tr.SetTotal(int64(n) - 1 + int64(len(leaves))) // pass 1 skips page 0
	for _, id := range leaves {
		if err := step(); err != nil {
			return nil, fmt.Errorf("salvage %s: %w", path, err)
		}
		if free[id] {
			continue
		}
		b, ok, err := src.image(id)
		if err != nil {
			return nil, err
		}
		res.leaf(src, id, b, ok, n)
	}
	tr.Finish()
	return res, nil
}

// Tree tags (tree role + 1) of the trees salvage reads.
const (
	tagNodes   = page.RootNodes + 1
	tagEdges   = page.RootEdges + 1
	tagCatalog = page.RootCatalog + 1
)

const (
	slotsAt      = 32 // slot array offset in a B+tree page
	overflowFlag = 1 << 31
	ovHdr        = 28 // overflow page: [16:24] next, [24:28] bytes used
)

var le = binary.LittleEndian

// leaf decodes the records of one leaf page. A page whose checksum fails
// is used only if its layout passes btree.Check; every access is bounds
// checked regardless, and decoding never panics.
func (res *scanResult) leaf(src *source, id common.PageID, b []byte, valid bool, n uint64) {
	if b == nil || btree.Check(b) != nil {
		res.unreadable = append(res.unreadable, uint64(id))
		return
	}
	tag, lsn := b[13], uint64(page.LSN(b))
	cnt := int(le.Uint16(b[16:]))
	got := 0
	for i := 0; i < cnt; i++ {
		key, val, ovDamaged, ok := cellAt(src, b, i, n)
		if !ok {
			res.undecodable++
			continue
		}
		damaged := !valid || ovDamaged
		switch tag {
		case tagNodes:
			rec, err := decodeNode(key, val)
			if err != nil {
				res.undecodable++
				continue
			}
			nid := binary.BigEndian.Uint64(key)
			if old := res.nodes[nid]; old == nil || newer(old.Damaged, old.LSN, damaged, lsn) {
				res.nodes[nid] = &SalvagedNode{ID: engine.NodeID(nid), Labels: rec.Labels, Properties: rec.Props, Page: uint64(id), LSN: lsn, Damaged: damaged}
			}
		case tagEdges:
			rec, err := decodeEdge(key, val)
			if err != nil {
				res.undecodable++
				continue
			}
			eid := binary.BigEndian.Uint64(key)
			if old := res.edges[eid]; old == nil || newer(old.Damaged, old.LSN, damaged, lsn) {
				res.edges[eid] = &SalvagedEdge{ID: engine.EdgeID(eid), FromID: engine.NodeID(rec.From), ToID: engine.NodeID(rec.To),
					Label: rec.Label, Properties: rec.Props, Page: uint64(id), LSN: lsn, Damaged: damaged}
			}
		case tagCatalog:
			if name, ok := strings.CutPrefix(string(key), "idx/"); ok && name != "" {
				res.indexes[name] = true
			}
		}
		got++
	}
	if got == 0 && cnt > 0 {
		res.unreadable = append(res.unreadable, uint64(id))
	}
}

// newer reports whether a version (damaged, lsn) beats the one kept: an
// intact page beats a damaged one, then the higher LSN wins.
func newer(oldDamaged bool, oldLSN uint64, damaged bool, lsn uint64) bool {
	if oldDamaged != damaged {
		return !damaged
	}
	return lsn > oldLSN
}

// cellAt returns the key and value of leaf cell i, following an overflow
// chain; ovDamaged is set when an overflow page failed its checksum.
func cellAt(src *source, b []byte, i int, n uint64) (key, val []byte, ovDamaged, ok bool) {
	so := slotsAt + 2*i
	if so+2 > len(b) {
		return nil, nil, false, false
	}
	off := int(le.Uint16(b[so:]))
	if off < slotsAt || off+6 > len(b) {
		return nil, nil, false, false
	}
	kl := int(le.Uint16(b[off:]))
	vl := le.Uint32(b[off+2:])
	if off+6+kl > len(b) {
		return nil, nil, false, false
	}
	key = b[off+6 : off+6+kl]
	rest := b[off+6+kl:]
	if vl&overflowFlag == 0 {
		if int(vl) > len(rest) {
			return nil, nil, false, false
		}
		return key, rest[:vl], false, true
	}
	if len(rest) < 8 {
		return nil, nil, false, false
	}
	val, ovDamaged, ok = overflow(src, common.PageID(le.Uint64(rest)), int(vl&^overflowFlag), n)
	return key, val, ovDamaged, ok
}

// overflow reads an overflow chain of total bytes from first.
func overflow(src *source, first common.PageID, total int, n uint64) ([]byte, bool, bool) {
	per := src.ps - ovHdr
	if total <= 0 || uint64(total) > n*uint64(per) {
		return nil, false, false
	}
	out := make([]byte, 0, total)
	damaged := false
	seen := map[common.PageID]bool{}
	for id := first; len(out) < total; {
		if id == 0 || uint64(id) >= n || seen[id] {
			return nil, false, false
		}
		seen[id] = true
		b, ok, err := src.image(id)
		if err != nil || b == nil || page.PageType(b) != page.TypeOverflow {
			return nil, false, false
		}
		used := int(le.Uint32(b[24:]))
		if used <= 0 || used > per || len(out)+used > total {
			return nil, false, false
		}
		damaged = damaged || !ok
		out = append(out, b[ovHdr:ovHdr+used]...)
		id = common.PageID(le.Uint64(b[16:]))
	}
	return out, damaged, true
}

// decodeNode decodes a node cell; it never panics.
func decodeNode(key, val []byte) (rec *record.Node, err error) {
	defer func() {
		if p := recover(); p != nil {
			rec, err = nil, fmt.Errorf("node record: %v", p)
		}
	}()
	if len(key) != 8 {
		return nil, fmt.Errorf("node key of %d bytes", len(key))
	}
	return record.DecodeNode(val)
}

// decodeEdge decodes an edge cell; it never panics.
func decodeEdge(key, val []byte) (rec *record.Edge, err error) {
	defer func() {
		if p := recover(); p != nil {
			rec, err = nil, fmt.Errorf("edge record: %v", p)
		}
	}()
	if len(key) != 8 {
		return nil, fmt.Errorf("edge key of %d bytes", len(key))
	}
	return record.DecodeEdge(val)
}

// setCipher checks the key against an encrypted file's header: salvage of
// an encrypted file needs its key, and a key is refused for a plaintext
// file. Without a readable header a given key is used as is.
func (s *source) setCipher(m *page.Meta, c engine.PageCipher) error {
	if c == nil && m != nil && m.Encrypted {
		c = engine.FallbackEncryption() // SOMBRA_ENCRYPTION_KEY, for the tools
	}
	switch {
	case m != nil && m.Encrypted && c == nil:
		return fmt.Errorf("%s: database is encrypted; salvage needs the encryption key (DatabaseRepair.Encryption): %w", s.path, engine.ErrEncryption)
	case m != nil && !m.Encrypted && c != nil:
		return fmt.Errorf("%s: database is not encrypted; salvage it without an encryption key: %w", s.path, engine.ErrEncryption)
	case m != nil && m.Encrypted:
		if pt, err := c.Open(page.KeyCheckPageID, m.KeyCheck[:]); err != nil || string(pt) != page.KeyCheckText {
			return fmt.Errorf("%s: wrong encryption key (key check failed): %w", s.path, engine.ErrEncryption)
		}
	}
	s.cipher = c
	return nil
}
