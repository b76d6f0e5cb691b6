package repair

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/integrity"
	"github.com/sombradb/sombra/engine/internal/handle"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/internal/fixtures"
)

// fixture copies a committed fixture (and its WAL, if any) into a
// temporary directory and returns its path there.
func fixture(t *testing.T, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(filepath.Join(fixtures.Dir(), name+suffix))
		if errors.Is(err, os.ErrNotExist) && suffix != "" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+suffix, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func manifest(t *testing.T) *fixtures.Manifest {
	t.Helper()
	m, err := fixtures.LoadManifest(fixtures.Dir())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sums returns the SHA-256 of the database file and its WAL.
func sums(t *testing.T, path string) [2][32]byte {
	t.Helper()
	var out [2][32]byte
	for i, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		out[i] = sha256.Sum256(b)
	}
	return out
}

func kinds(issues []integrity.Issue) map[string]int {
	m := map[string]int{}
	for _, is := range issues {
		m[is.Kind]++
	}
	return m
}

func open(t *testing.T, path string) *engine.DB {
	t.Helper()
	db, err := engine.OpenWithConfig(path, engine.Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func nodeIDs(t *testing.T, path string) []uint64 {
	t.Helper()
	ids, err := open(t, path).AllNodeIDsOrdered()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]uint64, len(ids))
	for i, id := range ids {
		out[i] = uint64(id)
	}
	return out
}

func logicalHash(t *testing.T, path string) string {
	t.Helper()
	h, err := open(t, path).LogicalHash()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustHealthy(t *testing.T, path string) {
	t.Helper()
	rep, err := integrity.Check(path, integrity.Options{Full: true})
	if err != nil || !rep.IsHealthy() {
		t.Fatalf("%s is not healthy: %v %+v", path, err, rep.Issues)
	}
}

func TestVerifyFixtures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		corrupt bool
		want    []string // issue kinds that must be reported
	}{
		{name: fixtures.Healthy},
		{name: fixtures.TornWAL, want: []string{KindWALTail}},
		{name: fixtures.DanglingEdge, corrupt: true, want: []string{"dangling-edge", "label-index", "property-index", "count"}},
		{name: fixtures.CorruptPage, corrupt: true, want: []string{"checksum", "tree"}},
		{name: fixtures.BadHeader, corrupt: true, want: []string{"header"}},
		{name: fixtures.Truncated, corrupt: true, want: []string{"checksum", "tree"}},
		{name: fixtures.NotADB, err: engine.ErrNotADatabase},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := fixture(t, tc.name)
			before := sums(t, path)
			rep, err := NewDatabaseRepair(path).VerifyIntegrity()
			if after := sums(t, path); after != before {
				t.Fatal("verify modified the database or its WAL")
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.HasCorruption() != tc.corrupt {
				t.Fatalf("HasCorruption = %v, issues %+v", rep.HasCorruption(), rep.Issues)
			}
			got := kinds(rep.Issues)
			for _, k := range tc.want {
				if got[k] == 0 {
					t.Errorf("no %s issue in %+v", k, rep.Issues)
				}
			}
			if len(tc.want) == 0 && !rep.IsHealthy() {
				t.Errorf("issues on a healthy database: %+v", rep.Issues)
			}
		})
	}
}

func TestVerifyQuickChecksOnlyChecksums(t *testing.T) {
	rep, err := NewDatabaseRepair(fixture(t, fixtures.DanglingEdge)).Verify(integrity.Options{})
	if err != nil || !rep.IsHealthy() || rep.Mode != "quick" {
		t.Fatalf("quick check of a database with intact pages: %v %+v", err, rep)
	}
	rep, err = NewDatabaseRepair(fixture(t, fixtures.CorruptPage)).Verify(integrity.Options{})
	if err != nil || kinds(rep.Issues)["checksum"] != 1 {
		t.Fatalf("quick check missed the damaged page: %v %+v", err, rep)
	}
}

func TestRepairDanglingEdgesAndIndexDrift(t *testing.T) {
	m := manifest(t)
	path := fixture(t, fixtures.DanglingEdge)
	rep, err := NewDatabaseRepair(path).Repair()
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Success || rep.IssuesFound == 0 || rep.IssuesFixed != rep.IssuesFound || len(rep.Remaining) != 0 {
		t.Fatalf("repair: %+v", rep)
	}
	if !strings.Contains(strings.Join(rep.Actions, "\n"), "dropped 3 edges") {
		t.Errorf("actions %q", rep.Actions)
	}
	mustHealthy(t, path)

	db := open(t, path)
	for _, e := range m.DanglingEdge.DanglingEdges {
		if _, err := db.GetEdge(engine.EdgeID(e)); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("dangling edge %d survived: %v", e, err)
		}
	}
	ids, err := db.NodesByLabel(m.DanglingEdge.Label)
	if err != nil || !slices.Contains(ids, engine.NodeID(m.DanglingEdge.LabelNode)) {
		t.Errorf("label index still misses node %d: %v %v", m.DanglingEdge.LabelNode, ids, err)
	}
	err = db.View(func(tx *engine.Tx) error {
		if tx.NodeCount() != uint64(m.Healthy.Nodes-1) || tx.EdgeCount() != uint64(m.Healthy.Edges-len(m.DanglingEdge.DanglingEdges)) {
			t.Errorf("counts %d nodes %d edges", tx.NodeCount(), tx.EdgeCount())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A second repair finds nothing and writes nothing.
	before := sums(t, path)
	db.Close()
	rep, err = NewDatabaseRepair(path).Repair()
	if err != nil || !rep.Success || rep.IssuesFound != 0 || len(rep.Actions) != 0 {
		t.Fatalf("second repair: %v %+v", err, rep)
	}
	if sums(t, path)[0] != before[0] {
		t.Error("repairing a healthy database changed it")
	}
}

func TestRepairTornWAL(t *testing.T) {
	m := manifest(t)
	path := fixture(t, fixtures.TornWAL)
	rep, err := NewDatabaseRepair(path).Repair()
	if err != nil || !rep.Success || rep.IssuesFound != 1 || rep.IssuesFixed != 1 {
		t.Fatalf("repair: %v %+v", err, rep)
	}
	if st, err := os.Stat(path + "-wal"); err != nil || st.Size() != 0 {
		t.Fatalf("WAL after repair: %v %v", st, err)
	}
	got := nodeIDs(t, path)
	for _, id := range m.TornWAL.CommittedNodes {
		if !slices.Contains(got, id) {
			t.Errorf("committed node %d lost", id)
		}
	}
	if len(got) != m.Healthy.Nodes+len(m.TornWAL.CommittedNodes) {
		t.Errorf("%d nodes, want %d (the torn transaction must stay lost)", len(got), m.Healthy.Nodes+len(m.TornWAL.CommittedNodes))
	}
	mustHealthy(t, path)
}

func TestRepairRefusesDamagedPrimaryTrees(t *testing.T) {
	for _, name := range []string{fixtures.CorruptPage, fixtures.Truncated, fixtures.BadHeader} {
		t.Run(name, func(t *testing.T) {
			path := fixture(t, name)
			before := sums(t, path)
			rep, err := NewDatabaseRepair(path).Repair()
			if err != nil {
				t.Fatal(err)
			}
			if rep.Success || len(rep.Remaining) == 0 || !rep.NeedsSalvage || strings.Contains(rep.Advice, "--salvage-to") {
				t.Fatalf("repair of an unrepairable database: %+v", rep)
			}
			if sums(t, path) != before {
				t.Error("an unrepairable database was modified")
			}
		})
	}
}

func TestRepairRebuildsDamagedIndexTree(t *testing.T) {
	healthy := fixture(t, fixtures.Healthy)
	path := fixture(t, fixtures.Healthy)
	// Damage a leaf of the label index and one of the adjacency tree.
	for _, tag := range []byte{page.RootLabels + 1, page.RootAdj + 1} {
		id := findPage(t, path, func(p []byte) bool { return page.PageType(p) == page.TypeLeaf && p[13] == tag })
		flip(t, path, id, 2000)
	}
	rep, err := NewDatabaseRepair(path).Repair()
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Success {
		t.Fatalf("repair: %+v", rep)
	}
	all := strings.Join(rep.Actions, "\n")
	for _, want := range []string{"rebuilt the label index", "rebuilt the adjacency tree", "rebuilt the free list"} {
		if !strings.Contains(all, want) {
			t.Errorf("actions %q lack %q", rep.Actions, want)
		}
	}
	mustHealthy(t, path)
	if logicalHash(t, path) != logicalHash(t, healthy) {
		t.Error("repair changed the nodes or edges")
	}
	a, b := open(t, healthy), open(t, path)
	for _, l := range []string{"Person", "Post", "Comment"} {
		x, _ := a.NodesByLabel(l)
		y, err := b.NodesByLabel(l)
		if err != nil || !slices.Equal(x, y) {
			t.Errorf("label %s: %v vs %v (%v)", l, x, y, err)
		}
	}
	n, _ := a.Neighbors(2)
	m, err := b.Neighbors(2)
	if err != nil || !slices.Equal(n, m) {
		t.Errorf("neighbors of 2: %v vs %v (%v)", n, m, err)
	}
}

func TestRepairRebuildsFreeList(t *testing.T) {
	path := fixture(t, fixtures.Healthy)
	// Leak the last entry of the free-list trunk, and damage another
	// free page.
	trunk := findPage(t, path, func(p []byte) bool { return page.PageType(p) == page.TypeFreeList })
	p := readPage(t, path, trunk)
	n := binary.LittleEndian.Uint32(p[24:])
	if n < 2 {
		t.Fatalf("trunk %d lists %d pages; the fixture needs a free list", trunk, n)
	}
	leaked := binary.LittleEndian.Uint64(p[28+8*(n-1):])
	victim := binary.LittleEndian.Uint64(p[28:])
	binary.LittleEndian.PutUint32(p[24:], n-1)
	writePage(t, path, trunk, p, true)
	flip(t, path, victim, 100)

	before, err := NewDatabaseRepair(path).VerifyIntegrity()
	if err != nil {
		t.Fatal(err)
	}
	k := kinds(before.Issues)
	if k["leaked-pages"] == 0 || k["checksum"] == 0 || k["freelist-count"] == 0 {
		t.Fatalf("damage not seen: %+v", before.Issues)
	}
	rep, err := NewDatabaseRepair(path).Repair()
	if err != nil || !rep.Success {
		t.Fatalf("repair: %v %+v", err, rep)
	}
	if !strings.Contains(strings.Join(rep.Actions, "\n"), "1 unreadable unused page rewritten") {
		t.Errorf("actions %q", rep.Actions)
	}
	mustHealthy(t, path)
	info, err := open(t, path).Info()
	if err != nil || info.FreePages != uint64(n)+1 { // the entries and the trunk
		t.Errorf("free pages after repair: %d, want %d (page %d back on the list): %v", info.FreePages, n+1, leaked, err)
	}
}

func TestRepairBusy(t *testing.T) {
	path := fixture(t, fixtures.DanglingEdge)
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	before := sums(t, path)
	_, err = NewDatabaseRepair(path).Repair()
	if !errors.Is(err, engine.ErrBusy) {
		t.Fatalf("err = %v, want ErrBusy", err)
	}
	if sums(t, path)[0] != before[0] {
		t.Error("a busy repair modified the database")
	}
	// Salvage only reads: an open connection is fine, a writer is not.
	r := NewDatabaseRepair(path)
	if _, err := r.SalvageTo(filepath.Join(t.TempDir(), "out.db")); err != nil {
		t.Fatalf("salvage while another connection is open: %v", err)
	}
	tx, err := db.BeginTransaction()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := r.SalvageTo(filepath.Join(t.TempDir(), "out.db")); !errors.Is(err, engine.ErrBusy) {
		t.Fatalf("salvage during a write transaction: %v, want ErrBusy", err)
	}
	tx.Rollback()
	// Compaction or restore (the exclusive lock) stops even verification.
	if err := handle.Pager(db).ExclusiveLock(0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.VerifyIntegrity(); !errors.Is(err, engine.ErrBusy) {
		t.Fatalf("verify under an exclusive lock: %v, want ErrBusy", err)
	}
}

func TestRepairMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.db")
	if _, err := NewDatabaseRepair(path).Repair(); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("repair created the missing database")
	}
}

// --- raw page helpers ---

func readPage(t *testing.T, path string, id uint64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := make([]byte, page.DefaultSize)
	if _, err := f.ReadAt(p, int64(id)*page.DefaultSize); err != nil {
		t.Fatal(err)
	}
	return p
}

func writePage(t *testing.T, path string, id uint64, p []byte, reseal bool) {
	t.Helper()
	if reseal {
		binary.LittleEndian.PutUint32(p[0:4], crc32.Checksum(p[4:], crc32.MakeTable(crc32.Castagnoli)))
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(p, int64(id)*page.DefaultSize); err != nil {
		t.Fatal(err)
	}
}

// flip inverts 16 bytes of page id at off without resealing it.
func flip(t *testing.T, path string, id uint64, off int) {
	t.Helper()
	p := readPage(t, path, id)
	for i := off; i < off+16; i++ {
		p[i] ^= 0xff
	}
	writePage(t, path, id, p, false)
}

// findPage returns the first page (after the header) that match accepts.
func findPage(t *testing.T, path string, match func([]byte) bool) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for id := 1; (id+1)*page.DefaultSize <= len(b); id++ {
		if p := b[id*page.DefaultSize : (id+1)*page.DefaultSize]; match(p) {
			return uint64(id)
		}
	}
	t.Fatal("no such page")
	return 0
}
