// Package integrity verifies a database (the guide's IntegrityChecker).
//
// A quick check reads the header and verifies page checksums (all pages, or
// an evenly spread sample). A full check also walks every tree, accounts for
// every page (reachable from a tree or on the free list, exactly once), and
// cross-checks the graph: edges point at existing nodes, adjacency entries
// match edges, label and property indexes match the records, and counters
// match what is stored. Every problem is reported, not only the first.
package integrity

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/btree"
	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/handle"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/pager"
	"github.com/sombradb/sombra/engine/internal/progress"
	"github.com/sombradb/sombra/engine/internal/record"
)

// Severity of an issue.
type Severity string

const (
	Critical Severity = "critical" // data is unreadable or wrong
	Error    Severity = "error"    // structure is inconsistent; repair can fix it
	Warning  Severity = "warning"  // space is wasted or a counter is off
)

// Issue is one problem found.
type Issue struct {
	Severity    Severity `json:"severity"`
	Kind        string   `json:"kind"`
	Page        uint64   `json:"page,omitempty"`
	Description string   `json:"description"`
}

// Report is the result of a check.
type Report struct {
	Path         string `json:"path"`
	Mode         string `json:"mode"` // quick or full
	PagesChecked int    `json:"pages_checked"`
	PageCount    uint64 `json:"page_count"`
	Nodes        uint64 `json:"nodes"`
	Edges        uint64 `json:"edges"`
	// TreePages counts the pages of each tree (full checks only).
	TreePages map[string]int `json:"tree_pages,omitempty"`
	// Issues lists the first MaxIssues problems found; IssuesTotal counts
	// all of them and IssuesTruncated says the list was cut.
	Issues          []Issue `json:"issues"`
	IssuesTotal     int     `json:"issues_total"`
	IssuesTruncated bool    `json:"issues_truncated"`
	// SeverityCounts counts all issues found (listed or not) by severity.
	SeverityCounts map[Severity]int `json:"severity_counts"`
	Duration       time.Duration    `json:"-"`
}

// IsHealthy reports whether no issue was found.
func (r *Report) IsHealthy() bool { return len(r.Issues) == 0 }

// HasCorruption reports whether any issue is critical or an error.
func (r *Report) HasCorruption() bool {
	for _, i := range r.Issues {
		if i.Severity != Warning {
			return true
		}
	}
	return r.SeverityCounts[Critical]+r.SeverityCounts[Error] > 0
}

func (r *Report) add(sev Severity, kind string, pg common.PageID, format string, args ...any) {
	r.Count(sev)
	if len(r.Issues) >= MaxIssues {
		r.IssuesTruncated = true
		return
	}
	r.Issues = append(r.Issues, Issue{Severity: sev, Kind: kind, Page: uint64(pg), Description: fmt.Sprintf(format, args...)})
}

// Count counts an issue of severity sev that is not (or not yet) added to
// Issues, such as one found outside the integrity checker.
func (r *Report) Count(sev Severity) {
	r.IssuesTotal++
	if r.SeverityCounts == nil {
		r.SeverityCounts = map[Severity]int{}
	}
	r.SeverityCounts[sev]++
}

// Prepend puts an issue found outside the checker first in the list and
// counts it.
func (r *Report) Prepend(is Issue) {
	r.Count(is.Severity)
	r.Issues = append([]Issue{is}, r.Issues...)
}

// MaxIssues is how many issues a report lists; the rest are only counted
// (a wrecked file would otherwise produce a report as big as itself).
const MaxIssues = 1000

// Options select the check.
type Options struct {
	// Full walks trees and cross-checks the graph; otherwise only checksums.
	Full bool
	// SamplePages limits the checksum pass to this many pages spread evenly
	// over the file (0: every page).
	SamplePages int
	// Progress, if set, is called as the check goes (throttled) with its
	// position in bytes and the file's size in bytes. A full check reads
	// pages in three passes (checksums, tree walks, graph cross-checks);
	// the position is the share of those reads done, scaled to the file's
	// size, so the total is the file and a rate computed from it is the
	// rate at which the file is being checked.
	Progress func(done, total int64)
}

// IntegrityChecker is the guide's checker bound to a path.
type IntegrityChecker struct{ path string }

// NewIntegrityChecker returns a checker for the database at path.
func NewIntegrityChecker(path string) *IntegrityChecker { return &IntegrityChecker{path: path} }

// Verify runs a full check.
func (c *IntegrityChecker) Verify() (*Report, error) { return Check(c.path, Options{Full: true}) }

// Check opens path read-only and checks it. Damage is reported in the
// Report; the error is for failures to check at all (missing file, not a
// database). A damaged header is both: the report holds the issue and the
// error matches engine.ErrCorrupt.
func Check(path string, opts Options) (*Report, error) {
	return CheckContext(context.Background(), path, opts)
}

// CheckContext is Check, stopped when ctx is cancelled (see
// CheckDBContext).
func CheckContext(ctx context.Context, path string, opts Options) (*Report, error) {
	db, err := engine.OpenWithConfig(path, engine.Config{ReadOnly: true})
	if err != nil {
		rep := &Report{Path: path, Mode: mode(opts)}
		if ce, ok := err.(*common.CorruptionError); ok {
			rep.add(Critical, "header", ce.Page, "%s", ce.Reason)
		}
		return rep, err
	}
	defer db.Close()
	return CheckDBContext(ctx, db, opts)
}

func mode(o Options) string {
	if o.Full {
		return "full"
	}
	return "quick"
}

// CheckDB checks an open database on a consistent snapshot.
//
// A page that cannot be read at all (an I/O error such as EIO, as opposed
// to a page that reads but fails its checksum) says nothing about the
// data: CheckDB then stops and returns that error, wrapped, instead of a
// report that would call the page corrupt and the database in need of
// repair. The error does not match engine.ErrCorrupt.
func CheckDB(db *engine.DB, opts Options) (*Report, error) {
	return CheckDBContext(context.Background(), db, opts)
}

// CheckDBContext is CheckDB, stopped when ctx is cancelled: the context is
// checked at every page read, and a cancelled check returns an error
// matching ctx.Err() (not a report of the pages it did not get to).
func CheckDBContext(ctx context.Context, db *engine.DB, opts Options) (*Report, error) {
	start := time.Now()
	p := handle.Pager(db)
	rep := &Report{Path: p.Path(), Mode: mode(opts)}
	if err := progress.New(ctx, nil, 0).Err(); err != nil {
		return rep, err
	}
	snap, err := p.BeginRead()
	if err != nil {
		return rep, err
	}
	defer snap.Close()
	r := &ioTrap{snap: snap}
	meta, err := snap.Meta()
	if err != nil {
		if !errors.Is(err, common.ErrCorrupt) {
			return rep, readFailed(p.Path(), err)
		}
		rep.add(Critical, "header", 0, "%v", err)
		return rep, nil
	}
	rep.PageCount = meta.PageCount
	rep.Nodes, rep.Edges = meta.NodeCount, meta.EdgeCount
	n := int64(meta.PageCount)
	if opts.SamplePages > 0 && int64(opts.SamplePages) < n {
		n = int64(opts.SamplePages)
	}
	// Expected reads: the checksum pass, then (full) about one read per
	// page in the tree walks and one per tree page in the cross-checks;
	// refined once the walks have counted the tree pages.
	expect := n
	if opts.Full {
		expect += 2 * int64(meta.PageCount)
	}
	r.tr = progress.New(ctx, scaled(opts.Progress, int64(meta.PageCount)*int64(p.PageSize())), expect)
	defer r.tr.Finish()
	if err := checksums(r, meta, opts.SamplePages, rep); err != nil {
		return rep, readFailed(p.Path(), err)
	}
	if opts.Full {
		c := &checker{snap: r, meta: meta, rep: rep, owner: make([]byte, meta.PageCount)}
		c.structure()
		if r.err == nil {
			var tree int64
			for _, k := range rep.TreePages {
				tree += int64(k)
			}
			r.tr.SetTotal(r.tr.Done() + tree)
		}
		if err := c.graph(); err != nil {
			return rep, err
		}
		// The walks tolerate unreadable pages (they report damage and go
		// on); a read that failed with an I/O error makes what they
		// reported meaningless.
		if r.err != nil {
			return rep, readFailed(p.Path(), r.err)
		}
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// scaled maps a count of page reads against their expected number to bytes
// of a file of size bytes (see Options.Progress); nil stays nil.
func scaled(fn func(done, total int64), size int64) func(done, total int64) {
	if fn == nil {
		return nil
	}
	return func(done, total int64) {
		if total <= 0 {
			fn(0, size)
			return
		}
		fn(min(int64(float64(done)/float64(total)*float64(size)), size), size)
	}
}

// readFailed wraps the first I/O error met while checking path; a
// cancellation is returned as it is.
func readFailed(path string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("check %s: a page could not be read, an I/O error and not corruption (retry; check the disk if it persists): %w", path, err)
}

// ioTrap reads pages through a snapshot and remembers the first error that
// is not damage (not engine.ErrCorrupt): the tree walks and scans swallow
// read errors as damage, so this is where an I/O error is kept apart.
//
// It is also where the check counts its reads and notices a cancelled
// context: every pass reads through it, and a read refused as cancelled
// is kept like an I/O error, so the walks (which go on past unreadable
// pages) end quickly and CheckDB returns the cancellation.
type ioTrap struct {
	snap *pager.Snapshot
	err  error
	tr   *progress.Tracker
}

func (t *ioTrap) Page(id common.PageID) ([]byte, error) {
	if err := t.tr.Add(1); err != nil {
		if t.err == nil {
			t.err = err
		}
		return nil, err
	}
	b, err := t.snap.Page(id)
	if err != nil && t.err == nil && !errors.Is(err, common.ErrCorrupt) {
		t.err = err
	}
	return b, err
}

// checksums verifies page checksums as the snapshot sees them. It stops at
// the first page that cannot be read (returned), reporting only damage.
func checksums(r *ioTrap, meta *page.Meta, sample int, rep *Report) error {
	n := meta.PageCount
	step := uint64(1)
	if sample > 0 && uint64(sample) < n {
		step = n / uint64(sample)
	}
	for id := uint64(0); id < n; id += step {
		rep.PagesChecked++
		if _, err := r.Page(common.PageID(id)); err != nil {
			if r.err != nil {
				return r.err
			}
			rep.add(Critical, "checksum", common.PageID(id), "%v", err)
		}
	}
	return nil
}

type checker struct {
	snap  *ioTrap
	meta  *page.Meta
	rep   *Report
	owner []byte // 0 unseen, else tree tag (root+1), 100 free list
}

var rootNames = [page.NumRoots]string{"nodes", "edges", "adjacency", "labels", "properties", "catalog"}

const freeOwner = 100

func (c *checker) claim(id common.PageID, owner byte, what string) {
	if uint64(id) >= uint64(len(c.owner)) || id == 0 {
		c.rep.add(Error, "page-range", id, "%s refers to page %d outside the file (%d pages)", what, id, len(c.owner))
		return
	}
	if prev := c.owner[id]; prev != 0 {
		c.rep.add(Error, "page-shared", id, "page %d is used by %s and %s", id, ownerName(prev), what)
		return
	}
	c.owner[id] = owner
}

func ownerName(o byte) string {
	if o == freeOwner {
		return "the free list"
	}
	if int(o-1) < len(rootNames) {
		return "the " + rootNames[o-1] + " tree"
	}
	return "unknown"
}

// structure walks every tree and the free list and accounts for every page.
func (c *checker) structure() {
	for r := 0; r < page.NumRoots; r++ {
		owner := byte(r) + 1
		name := "the " + rootNames[r] + " tree"
		if c.rep.TreePages == nil {
			c.rep.TreePages = map[string]int{}
		}
		_, err := btree.Walk(c.snap, c.meta.Roots[r], func(id common.PageID, _ page.Type) error {
			c.claim(id, owner, name)
			c.rep.TreePages[rootNames[r]]++
			return nil
		}, func(pr btree.Problem) {
			c.rep.add(Critical, "tree", pr.Page, "%s: %s", name, pr.Reason)
		})
		if err != nil {
			c.rep.add(Critical, "tree", 0, "%s: %v", name, err)
		}
	}
	free, err := pager.FreeListPages(c.snap.Page, c.meta.FreeHead, c.meta.PageCount)
	if err != nil {
		c.rep.add(Error, "freelist", c.meta.FreeHead, "free list: %v", err)
	}
	for _, id := range free {
		c.claim(id, freeOwner, "the free list")
	}
	if uint64(len(free)) != c.meta.FreeCount && err == nil {
		c.rep.add(Warning, "freelist-count", 0, "header counts %d free pages, the free list holds %d", c.meta.FreeCount, len(free))
	}
	leaked := 0
	first := common.PageID(0)
	for id := 1; id < len(c.owner); id++ {
		if c.owner[id] == 0 {
			if leaked == 0 {
				first = common.PageID(id)
			}
			leaked++
		}
	}
	if leaked > 0 {
		c.rep.add(Warning, "leaked-pages", first, "%d pages are neither in a tree nor on the free list (first: page %d)", leaked, first)
	}
}

// graph cross-checks records and indexes in memory bounded by the page
// cache plus a small constant, whatever the file size: each tree is read
// once in key order, and what one tree must agree with in another is
// compared as an order-independent digest (a sum of per-entry hashes) and
// a count. Only when a digest or count disagrees does a second, targeted
// pass look entries up one by one to name them; that pass is bounded by the
// cache too, and runs only on a damaged database.
func (c *checker) graph() error {
	snap, m, rep := c.snap, c.meta, c.rep
	indexed := map[string]bool{} // property name -> indexed (a handful)
	scan(snap, m.Roots[page.RootCatalog], []byte("idx/"), func(k, _ []byte) { indexed[string(k[4:])] = true })
	nodes := newNodeSet(snap, m.Roots[page.RootNodes])
	labelCount := map[string]uint64{} // per label: nodes carrying it (a handful)
	var nodeN uint64
	var wantLabels, wantProps digest // expected label and property index entries
	var kbuf []byte
	scan(snap, m.Roots[page.RootNodes], nil, func(k, v []byte) {
		id := binary.BigEndian.Uint64(k)
		n, err := record.DecodeNode(v)
		if err != nil {
			rep.add(Critical, "record", 0, "node %d: %v", id, err)
			return
		}
		nodeN++
		nodes.add(id)
		for _, l := range n.Labels {
			labelCount[l]++
			kbuf = labelKey(kbuf[:0], l, id)
			wantLabels.add(kbuf)
		}
		for name, val := range n.Props {
			if indexed[name] {
				kbuf = propKey(kbuf[:0], name, val, id)
				wantProps.add(kbuf)
			}
		}
	})
	if nodeN != m.NodeCount {
		rep.add(Warning, "count", 0, "header counts %d nodes, %d are stored", m.NodeCount, nodeN)
	}
	var wantAdj digest
	var edgeN uint64
	scan(snap, m.Roots[page.RootEdges], nil, func(k, v []byte) {
		id := binary.BigEndian.Uint64(k)
		e, err := record.DecodeEdge(v)
		if err != nil {
			rep.add(Critical, "record", 0, "edge %d: %v", id, err)
			return
		}
		edgeN++
		for _, end := range []uint64{e.From, e.To} {
			if !nodes.has(end) {
				rep.add(Error, "dangling-edge", 0, "edge %d refers to missing node %d", id, end)
			}
		}
		kbuf = adjEntry(kbuf[:0], 'o', e.From, id, e.To)
		wantAdj.add(kbuf)
		kbuf = adjEntry(kbuf[:0], 'i', e.To, id, e.From)
		wantAdj.add(kbuf)
	})
	if edgeN != m.EdgeCount {
		rep.add(Warning, "count", 0, "header counts %d edges, %d are stored", m.EdgeCount, edgeN)
	}
	var gotAdj digest
	scan(snap, m.Roots[page.RootAdj], nil, func(k, v []byte) {
		kbuf = append(append(kbuf[:0], k...), v...)
		gotAdj.add(kbuf)
	})
	if gotAdj != wantAdj {
		c.adjacencyDetail(wantAdj.n)
	}
	var gotLabels digest
	labelsSeen := map[string]uint64{}
	scan(snap, m.Roots[page.RootLabels], nil, func(k, _ []byte) {
		i := bytes.IndexByte(k, 0)
		if i < 0 || len(k) != i+9 {
			rep.add(Error, "label-index", 0, "malformed label index key %x", k)
			return
		}
		gotLabels.add(k)
		labelsSeen[string(k[:i])]++
	})
	if gotLabels != wantLabels {
		c.labelDetail()
	}
	for l, n := range labelCount {
		if labelsSeen[l] != n {
			rep.add(Error, "label-index", 0, "label %q: %d nodes carry it, the index lists %d", l, n, labelsSeen[l])
		}
	}
	var gotProps digest
	scan(snap, m.Roots[page.RootProps], nil, func(k, _ []byte) { gotProps.add(k) })
	if gotProps != wantProps {
		c.propertyDetail(indexed, wantProps.n)
	}
	stored := map[string]uint64{}
	scan(snap, m.Roots[page.RootCatalog], []byte("lcount/"), func(k, v []byte) {
		if len(v) == 8 {
			stored[string(k[7:])] = binary.BigEndian.Uint64(v)
		}
	})
	for l, n := range labelCount {
		if stored[l] != n {
			rep.add(Warning, "count", 0, "label %q: counter says %d, %d nodes carry it", l, stored[l], n)
		}
	}
	return nil
}

// adjacencyDetail names the adjacency entries that disagree with the edge
// records: each entry is checked against its edge (looked up by id), and
// the entries expected but absent are counted.
func (c *checker) adjacencyDetail(want uint64) {
	snap, m, rep := c.snap, c.meta, c.rep
	var matched uint64
	scan(snap, m.Roots[page.RootAdj], nil, func(k, v []byte) {
		if len(k) == 17 && len(v) == 8 {
			if e, ok := c.edge(binary.BigEndian.Uint64(k[9:])); ok {
				node, other := binary.BigEndian.Uint64(k[1:9]), binary.BigEndian.Uint64(v)
				if (k[0] == 'o' && e.From == node && e.To == other) || (k[0] == 'i' && e.To == node && e.From == other) {
					matched++
					return
				}
			}
		}
		rep.add(Error, "adjacency", 0, "adjacency entry %x has no matching edge", k)
	})
	if matched < want {
		rep.add(Error, "adjacency", 0, "%d adjacency entries are missing", want-matched)
	}
}

// labelDetail names the label index entries whose node does not carry the
// label (missing entries show in the per-label counts).
func (c *checker) labelDetail() {
	snap, m, rep := c.snap, c.meta, c.rep
	scan(snap, m.Roots[page.RootLabels], nil, func(k, _ []byte) {
		i := bytes.IndexByte(k, 0)
		if i < 0 || len(k) != i+9 {
			return // reported by the main pass
		}
		l, id := string(k[:i]), binary.BigEndian.Uint64(k[i+1:])
		n, ok := c.node(id)
		if !ok || !contains(n.Labels, l) {
			rep.add(Error, "label-index", 0, "label index lists node %d under %q, the node does not carry it", id, l)
		}
	})
}

// propertyDetail names the property index entries that match no node's
// indexed property, and counts the entries expected but absent.
func (c *checker) propertyDetail(indexed map[string]bool, want uint64) {
	snap, m, rep := c.snap, c.meta, c.rep
	var matched uint64
	var kbuf []byte
	scan(snap, m.Roots[page.RootProps], nil, func(k, _ []byte) {
		if len(k) >= 10 {
			if n, ok := c.node(binary.BigEndian.Uint64(k[len(k)-8:])); ok {
				for name, val := range n.Props {
					if indexed[name] {
						kbuf = propKey(kbuf[:0], name, val, binary.BigEndian.Uint64(k[len(k)-8:]))
						if bytes.Equal(kbuf, k) {
							matched++
							return
						}
					}
				}
			}
		}
		rep.add(Error, "property-index", 0, "property index entry %x matches no node", k)
	})
	if matched < want {
		rep.add(Error, "property-index", 0, "%d property index entries are missing", want-matched)
	}
}

// node looks up and decodes node id (false when absent or unreadable).
func (c *checker) node(id uint64) (*record.Node, bool) {
	v, ok, err := btree.Get(c.snap, c.meta.Roots[page.RootNodes], be64(id))
	if err != nil || !ok {
		return nil, false
	}
	n, err := record.DecodeNode(v)
	return n, err == nil
}

// edge looks up and decodes edge id (false when absent or unreadable).
func (c *checker) edge(id uint64) (*record.Edge, bool) {
	v, ok, err := btree.Get(c.snap, c.meta.Roots[page.RootEdges], be64(id))
	if err != nil || !ok {
		return nil, false
	}
	e, err := record.DecodeEdge(v)
	return e, err == nil
}

// digest is an order-independent summary of a set of byte strings: the
// count and the sum of their 64-bit hashes. Two sets built from the same
// entries in any order compare equal; a missing, extra or altered entry
// makes them differ (but for a 2^-64 chance).
type digest struct {
	n   uint64
	sum uint64
}

var digestSeed = maphash.MakeSeed()

func (d *digest) add(b []byte) {
	d.n++
	d.sum += maphash.Bytes(digestSeed, b)
}

// nodeSet answers "does node id exist" for the dangling-edge check: a
// bitmap over node ids when that fits in maxNodeBitmap (one bit per id up
// to the largest, 8 MiB covers 64 million ids), else a lookup in the node
// tree through the page cache. Either way its memory does not grow with
// the file beyond that constant.
type nodeSet struct {
	bits []uint64
	snap btree.Reader
	root common.PageID
}

const maxNodeBitmap = 8 << 20

func newNodeSet(snap btree.Reader, root common.PageID) *nodeSet {
	s := &nodeSet{snap: snap, root: root}
	c := btree.NewCursor(snap, root)
	if c.Last() && len(c.Key()) == 8 {
		if top := binary.BigEndian.Uint64(c.Key()); top/8 < maxNodeBitmap {
			s.bits = make([]uint64, top/64+1)
		}
	}
	return s
}

func (s *nodeSet) add(id uint64) {
	if s.bits != nil && id/64 < uint64(len(s.bits)) {
		s.bits[id/64] |= 1 << (id % 64)
	}
}

func (s *nodeSet) has(id uint64) bool {
	if s.bits != nil {
		return id/64 < uint64(len(s.bits)) && s.bits[id/64]&(1<<(id%64)) != 0
	}
	_, ok, err := btree.Get(s.snap, s.root, be64(id))
	return ok && err == nil
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// adjEntry appends an adjacency key (direction, node, edge) and its value
// (the other endpoint).
func adjEntry(b []byte, dir byte, n, e, other uint64) []byte {
	b = append(b, dir)
	b = binary.BigEndian.AppendUint64(b, n)
	b = binary.BigEndian.AppendUint64(b, e)
	return binary.BigEndian.AppendUint64(b, other)
}

// labelKey appends a label index key: label, 0, node id.
func labelKey(b []byte, l string, id uint64) []byte {
	b = append(append(b, l...), 0)
	return binary.BigEndian.AppendUint64(b, id)
}

// propKey appends a property index key: name length, name, value, node id.
func propKey(b []byte, name string, v record.Value, n uint64) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	b = record.IndexKey(b, v)
	return binary.BigEndian.AppendUint64(b, n)
}

// scan visits keys under prefix, tolerating damage (reported elsewhere).
func scan(r btree.Reader, root common.PageID, prefix []byte, fn func(k, v []byte)) {
	c := btree.NewCursor(r, root)
	for ok := c.Seek(prefix); ok; ok = c.Next() {
		if !bytes.HasPrefix(c.Key(), prefix) {
			return
		}
		v, err := c.Value()
		if err != nil {
			continue
		}
		fn(c.Key(), v)
	}
}
