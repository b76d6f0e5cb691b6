package repair

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/integrity"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/internal/fixtures"
)

func salvageTo(t *testing.T, src string, opts SalvageOptions) (string, *SalvageReport) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "salvaged.db")
	rep, err := NewDatabaseRepair(src).SalvageToWithOptions(out, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Verified {
		t.Fatalf("salvaged database not verified: %+v", rep)
	}
	mustHealthy(t, out)
	for _, s := range []string{".salvage-tmp", ".salvage-tmp-wal", ".salvage-tmp-shm"} {
		if _, err := os.Stat(out + s); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind", s)
		}
	}
	return out, rep
}

func TestSalvageHealthyKeepsEverything(t *testing.T) {
	src := fixture(t, fixtures.Healthy)
	out, rep := salvageTo(t, src, SalvageOptions{})
	if logicalHash(t, out) != logicalHash(t, src) {
		t.Fatal("salvaged graph differs from the source")
	}
	if rep.DamagedPages != 0 || rep.EdgesSkipped != 0 || rep.NodesRemapped != 0 || rep.RecordsUndecodable != 0 {
		t.Errorf("report %+v", rep)
	}
	// Deleted nodes stay deleted although freed leaves still hold them.
	if got, want := nodeIDs(t, out), nodeIDs(t, src); !slices.Equal(got, want) {
		t.Fatalf("node ids %v, want %v", got, want)
	}
	info, err := open(t, out).Info()
	if err != nil || !slices.Equal(info.PropertyIndexes, []string{"email"}) {
		t.Errorf("property indexes %v (%v)", info.PropertyIndexes, err)
	}
}

// The next id of the salvaged database continues after the source's, so
// the id of a deleted node is not handed out again.
func TestSalvageKeepsIDCounter(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src.db")
	db, err := engine.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *engine.Tx) error {
		for i := 0; i < 5; i++ {
			if _, err := tx.CreateNode("N", nil); err != nil {
				return err
			}
		}
		return tx.DeleteNode(5)
	})
	if err == nil {
		_, err = db.CheckpointWithMode(engine.CheckpointTruncate)
	}
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	out, _ := salvageTo(t, src, SalvageOptions{})
	db, err = engine.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var next engine.NodeID
	if err := db.Update(func(tx *engine.Tx) (err error) { next, err = tx.CreateNode("N", nil); return err }); err != nil {
		t.Fatal(err)
	}
	if next != 6 {
		t.Errorf("next node id %d, want 6", next)
	}
}

func TestSalvageIgnoresFreedLeaves(t *testing.T) {
	// The fixture must have a freed leaf that still holds deleted records,
	// or this test proves nothing.
	path := fixture(t, fixtures.Healthy)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	db := open(t, path)
	live := map[byte][]uint64{tagNodes: nodeIDs(t, path)}
	err = db.View(func(tx *engine.Tx) error {
		for e, err := range tx.Edges() {
			if err != nil {
				return err
			}
			live[tagEdges] = append(live[tagEdges], uint64(e.ID))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stale := 0
	for id := 1; (id+1)*page.DefaultSize <= len(b); id++ {
		p := b[id*page.DefaultSize : (id+1)*page.DefaultSize]
		tag := p[13]
		if page.PageType(p) != page.TypeLeaf || (tag != tagNodes && tag != tagEdges) {
			continue
		}
		for i := 0; i < int(binary.LittleEndian.Uint16(p[16:])); i++ {
			off := int(binary.LittleEndian.Uint16(p[32+2*i:]))
			if rid := binary.BigEndian.Uint64(p[off+6:]); !slices.Contains(live[tag], rid) {
				stale++
			}
		}
	}
	if stale == 0 {
		t.Fatal("the fixture has no freed leaf with deleted records")
	}
	r := NewDatabaseRepair(path)
	nodes, err := r.SalvageNodes()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if !slices.Contains(live[tagNodes], uint64(n.ID)) {
			t.Errorf("deleted node %d resurrected", n.ID)
		}
	}
	edges, err := r.SalvageEdges()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range edges {
		if !slices.Contains(live[tagEdges], uint64(e.ID)) {
			t.Errorf("deleted edge %d resurrected", e.ID)
		}
	}
	if len(nodes) != len(live[tagNodes]) || len(edges) != len(live[tagEdges]) {
		t.Errorf("salvaged %d nodes and %d edges, want %d and %d", len(nodes), len(edges), len(live[tagNodes]), len(live[tagEdges]))
	}
}

func TestSalvageCorruptPage(t *testing.T) {
	m := manifest(t)
	healthy := fixture(t, fixtures.Healthy)
	src := fixture(t, fixtures.CorruptPage)
	out, rep := salvageTo(t, src, SalvageOptions{})

	var want []uint64
	for _, id := range nodeIDs(t, healthy) {
		if !slices.Contains(m.CorruptPage.NodesOnPage, id) {
			want = append(want, id)
		}
	}
	if got := nodeIDs(t, out); !slices.Equal(got, want) {
		t.Fatalf("salvaged %d nodes, want every node but the %d on page %d (%d)", len(got), len(m.CorruptPage.NodesOnPage), m.CorruptPage.Page, len(want))
	}
	if rep.DamagedPages != 1 || !slices.Equal(rep.DamagedPageList, []uint64{uint64(m.CorruptPage.Page)}) ||
		!slices.Equal(rep.UnreadableLeaves, []uint64{uint64(m.CorruptPage.Page)}) {
		t.Errorf("damage not reported: %+v", rep)
	}
	// Every edge whose endpoints survive is there with the same id; the
	// others are counted as skipped.
	hdb, odb := open(t, healthy), open(t, out)
	kept, skipped := 0, 0
	err := hdb.View(func(tx *engine.Tx) error {
		for e, err := range tx.Edges() {
			if err != nil {
				return err
			}
			if slices.Contains(want, uint64(e.From)) && slices.Contains(want, uint64(e.To)) {
				kept++
				got, err := odb.GetEdge(e.ID)
				if err != nil || got.From != e.From || got.To != e.To || got.Label != e.Label {
					t.Errorf("edge %d: %+v %v", e.ID, got, err)
				}
			} else {
				skipped++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.EdgesSalvaged != kept || rep.EdgesSkipped != skipped {
		t.Errorf("edges salvaged %d skipped %d, want %d and %d", rep.EdgesSalvaged, rep.EdgesSkipped, kept, skipped)
	}
}

func TestSalvageReadsCommittedWALFrames(t *testing.T) {
	m := manifest(t)
	src := fixture(t, fixtures.TornWAL)
	out, rep := salvageTo(t, src, SalvageOptions{})
	got := nodeIDs(t, out)
	for _, id := range m.TornWAL.CommittedNodes {
		if !slices.Contains(got, id) {
			t.Errorf("committed node %d (in the WAL) not salvaged", id)
		}
	}
	if len(got) != m.Healthy.Nodes+len(m.TornWAL.CommittedNodes) {
		t.Errorf("%d nodes: the torn transaction's nodes must not be salvaged", len(got))
	}
	if rep.WALFramesUsed == 0 || len(rep.Warnings) == 0 {
		t.Errorf("report %+v", rep)
	}
	// Salvage read the same graph the engine recovers.
	if logicalHash(t, out) != logicalHash(t, src) {
		t.Error("salvaged graph differs from the recovered one")
	}
}

func TestSalvageBadHeader(t *testing.T) {
	healthy := fixture(t, fixtures.Healthy)
	out, rep := salvageTo(t, fixture(t, fixtures.BadHeader), SalvageOptions{})
	if rep.HeaderReadable || rep.PageSize != page.DefaultSize {
		t.Errorf("report %+v", rep)
	}
	if logicalHash(t, out) != logicalHash(t, healthy) {
		t.Error("salvage of a database with a damaged header lost data")
	}
}

func TestSalvageTruncated(t *testing.T) {
	_, rep := salvageTo(t, fixture(t, fixtures.Truncated), SalvageOptions{})
	if rep.DamagedPages == 0 || rep.NodesSalvaged == 0 || rep.NodesSalvaged+rep.RecordsUndecodable < rep.NodesFound {
		t.Errorf("report %+v", rep)
	}
}

func TestSalvageNotADatabase(t *testing.T) {
	src := fixture(t, fixtures.NotADB)
	out := filepath.Join(t.TempDir(), "out.db")
	if _, err := NewDatabaseRepair(src).SalvageTo(out); !errors.Is(err, engine.ErrNotADatabase) {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Error("output created")
	}
}

func TestSalvageOutput(t *testing.T) {
	src := fixture(t, fixtures.Healthy)
	out := filepath.Join(t.TempDir(), "out.db")
	if err := os.WriteFile(out, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := NewDatabaseRepair(src)
	if _, err := r.SalvageTo(out); !errors.Is(err, engine.ErrExists) {
		t.Fatalf("existing output: %v", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "keep me" {
		t.Fatal("existing output modified")
	}
	if _, err := r.SalvageToWithOptions(out, SalvageOptions{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	mustHealthy(t, out)
	if _, err := r.SalvageToWithOptions(src, SalvageOptions{Overwrite: true}); !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("salvage into itself: %v", err)
	}
}

func TestSalvageDamagedPageBestEffort(t *testing.T) {
	healthy := fixture(t, fixtures.Healthy)
	path := fixture(t, fixtures.Healthy)
	// Change one letter inside a name on a node leaf: the checksum fails,
	// the layout is intact and every record still decodes.
	var target *SalvagedNode
	nodes, err := NewDatabaseRepair(healthy).SalvageNodes()
	if err != nil {
		t.Fatal(err)
	}
	for i := range nodes {
		if s, ok := nodes[i].Properties["name"].Str(); ok && len(s) > 3 {
			target = &nodes[i]
			break
		}
	}
	name, _ := target.Properties["name"].Str()
	p := readPage(t, path, target.Page)
	at := bytes.Index(p, []byte(name))
	if at < 0 {
		t.Fatal("name not on its page")
	}
	p[at] ^= 0x20 // letter case
	writePage(t, path, target.Page, p, false)

	got, err := NewDatabaseRepair(path).SalvageNodes()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(nodes) {
		t.Fatalf("%d nodes salvaged, want %d", len(got), len(nodes))
	}
	for _, n := range got {
		if n.Damaged != (n.Page == target.Page) {
			t.Errorf("node %d on page %d: damaged = %v", n.ID, n.Page, n.Damaged)
		}
	}
	_, rep := salvageTo(t, path, SalvageOptions{})
	if rep.RecordsFromDamagedPages == 0 || rep.NodesSalvaged != len(nodes) {
		t.Errorf("report %+v", rep)
	}
	_, rep = salvageTo(t, path, SalvageOptions{SkipDamaged: true})
	if rep.RecordsFromDamagedPages != 0 || rep.RecordsSkippedDamaged == 0 || rep.NodesSalvaged != len(nodes)-rep.RecordsSkippedDamaged {
		t.Errorf("report with SkipDamaged %+v", rep)
	}
}

func TestSalvageGuideAPI(t *testing.T) {
	m := manifest(t)
	r := NewDatabaseRepair(fixture(t, fixtures.Healthy))
	nodes, err := r.SalvageNodes()
	if err != nil || len(nodes) != m.Healthy.Nodes {
		t.Fatalf("%d nodes, %v", len(nodes), err)
	}
	edges, err := r.SalvageEdges()
	if err != nil || len(edges) != m.Healthy.Edges {
		t.Fatalf("%d edges, %v", len(edges), err)
	}
	if !slices.IsSortedFunc(nodes, func(a, b SalvagedNode) int { return cmp.Compare(uint64(a.ID), uint64(b.ID)) }) || nodes[0].Label() == "" {
		t.Errorf("nodes not in id order or without labels")
	}
	// The guide's recipe: recreate them in a new database (new ids).
	db, err := engine.Create(filepath.Join(t.TempDir(), "recreated.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ids := map[engine.NodeID]engine.NodeID{}
	err = db.Update(func(tx *engine.Tx) error {
		for _, n := range nodes {
			id, err := tx.CreateNode(n.Label(), n.Properties)
			if err != nil {
				return err
			}
			ids[n.ID] = id
		}
		for _, e := range edges {
			if _, err := tx.CreateEdge(ids[e.FromID], ids[e.ToID], e.Label, e.Properties); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := integrity.CheckDB(db, integrity.Options{Full: true})
	if err != nil || !rep.IsHealthy() {
		t.Fatalf("%v %+v", err, rep)
	}
}
