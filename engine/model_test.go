package engine

// Model-based test: random operations are applied both to the engine and to
// a trivial in-memory model of the graph; after every commit (and after a
// close and reopen) every query the engine answers is compared with the
// model. Set SOMBRA_MODEL_SEED to replay one seed.

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

type mNode struct {
	labels []string
	props  Properties
}

type mEdge struct {
	from, to NodeID
	label    string
	props    Properties
}

type graphModel struct {
	nodes    map[NodeID]*mNode
	edges    map[EdgeID]*mEdge
	indexes  map[string]bool
	nextNode NodeID
	nextEdge EdgeID
}

func newGraphModel() *graphModel {
	return &graphModel{nodes: map[NodeID]*mNode{}, edges: map[EdgeID]*mEdge{}, indexes: map[string]bool{}, nextNode: 1, nextEdge: 1}
}

func (m *graphModel) clone() *graphModel {
	c := &graphModel{nodes: make(map[NodeID]*mNode, len(m.nodes)), edges: make(map[EdgeID]*mEdge, len(m.edges)),
		indexes: maps.Clone(m.indexes), nextNode: m.nextNode, nextEdge: m.nextEdge}
	for id, n := range m.nodes {
		c.nodes[id] = &mNode{labels: slices.Clone(n.labels), props: maps.Clone(n.props)}
	}
	for id, e := range m.edges {
		ce := *e
		ce.props = maps.Clone(e.props)
		c.edges[id] = &ce
	}
	return c
}

func (m *graphModel) nodeIDs() []NodeID {
	ids := slices.Collect(maps.Keys(m.nodes))
	slices.Sort(ids)
	return ids
}

func (m *graphModel) edgeIDs() []EdgeID {
	ids := slices.Collect(maps.Keys(m.edges))
	slices.Sort(ids)
	return ids
}

var (
	modelLabels     = []string{"User", "Post", "Tag", "x", "Lábel"}
	modelEdgeLabels = []string{"FOLLOWS", "LIKES", "", "TAGGED"}
	modelPropNames  = []string{"name", "age", "score", "blob", "flag", "k"}
)

func randValue(rng *rand.Rand) PropertyValue {
	switch rng.IntN(12) {
	case 0:
		return NullValue()
	case 1:
		return BoolValue(rng.IntN(2) == 0)
	case 2, 3:
		return IntValue(int64(rng.IntN(7)) - 3)
	case 4:
		return IntValue(rng.Int64() - math.MaxInt64/2)
	case 5:
		fs := []float64{0, math.Copysign(0, -1), 1.5, -2.25, math.Inf(1), math.Inf(-1), math.NaN(), 1e300}
		return FloatValue(fs[rng.IntN(len(fs))])
	case 6, 7:
		return StringValue([]string{"", "a", "bob", "alice", "ü", "a\x00b"}[rng.IntN(6)])
	case 8:
		// longer than 200 bytes: the property index stores a digest
		return StringValue(strings.Repeat(string(rune('a'+rng.IntN(3))), 201+rng.IntN(300)))
	case 9:
		// large enough to push the record into overflow pages
		return BytesValue([]byte(strings.Repeat("z", 900+rng.IntN(6000))))
	case 10:
		return BytesValue([]byte{byte(rng.IntN(3)), 0, 1})
	default:
		return StringValue(strconv.Itoa(rng.IntN(20)))
	}
}

func randProps(rng *rand.Rand) Properties {
	p := Properties{}
	for i := rng.IntN(4); i > 0; i-- {
		p[modelPropNames[rng.IntN(len(modelPropNames))]] = randValue(rng)
	}
	return p
}

func randLabels(rng *rand.Rand) []string {
	var ls []string
	for _, i := range rng.Perm(len(modelLabels))[:rng.IntN(3)] {
		ls = append(ls, modelLabels[i])
	}
	return ls
}

func pickNode(rng *rand.Rand, m *graphModel) (NodeID, bool) {
	if len(m.nodes) == 0 {
		return 0, false
	}
	ids := m.nodeIDs()
	return ids[rng.IntN(len(ids))], true
}

// modelOp applies one random operation to tx and m. It returns a short
// description for failure messages.
func modelOp(t *testing.T, rng *rand.Rand, tx *Tx, m *graphModel) string {
	t.Helper()
	r := rng.IntN(100)
	switch {
	case r < 30 || len(m.nodes) < 3:
		labels, props := randLabels(rng), randProps(rng)
		id, err := tx.CreateNodeWithLabels(labels, props)
		if err != nil {
			t.Fatalf("CreateNode: %v", err)
		}
		if id != m.nextNode {
			t.Fatalf("CreateNode returned id %d, model expects %d", id, m.nextNode)
		}
		m.nodes[id] = &mNode{labels: labels, props: props}
		m.nextNode++
		return fmt.Sprintf("CreateNode(%v)=%d", labels, id)
	case r < 55:
		from, _ := pickNode(rng, m)
		to, _ := pickNode(rng, m)
		label := modelEdgeLabels[rng.IntN(len(modelEdgeLabels))]
		props := randProps(rng)
		id, err := tx.CreateEdge(from, to, label, props)
		if err != nil {
			t.Fatalf("CreateEdge: %v", err)
		}
		if id != m.nextEdge {
			t.Fatalf("CreateEdge returned id %d, model expects %d", id, m.nextEdge)
		}
		m.edges[id] = &mEdge{from: from, to: to, label: label, props: props}
		m.nextEdge++
		return fmt.Sprintf("CreateEdge(%d->%d)=%d", from, to, id)
	case r < 62:
		if rng.IntN(10) == 0 { // missing node
			if err := tx.DeleteNode(m.nextNode + 5); !errors.Is(err, ErrNotFound) {
				t.Fatalf("DeleteNode(missing) = %v, want ErrNotFound", err)
			}
			return "DeleteNode(missing)"
		}
		id, _ := pickNode(rng, m)
		if err := tx.DeleteNode(id); err != nil {
			t.Fatalf("DeleteNode(%d): %v", id, err)
		}
		delete(m.nodes, id)
		for eid, e := range m.edges {
			if e.from == id || e.to == id {
				delete(m.edges, eid)
			}
		}
		return fmt.Sprintf("DeleteNode(%d)", id)
	case r < 70:
		if len(m.edges) == 0 {
			if err := tx.DeleteEdge(m.nextEdge); !errors.Is(err, ErrNotFound) {
				t.Fatalf("DeleteEdge(missing) = %v", err)
			}
			return "DeleteEdge(missing)"
		}
		ids := m.edgeIDs()
		id := ids[rng.IntN(len(ids))]
		if err := tx.DeleteEdge(id); err != nil {
			t.Fatalf("DeleteEdge(%d): %v", id, err)
		}
		delete(m.edges, id)
		return fmt.Sprintf("DeleteEdge(%d)", id)
	case r < 90:
		id, _ := pickNode(rng, m)
		k := modelPropNames[rng.IntN(len(modelPropNames))]
		v := randValue(rng)
		if err := tx.SetNodeProperty(id, k, v); err != nil {
			t.Fatalf("SetNodeProperty(%d,%s): %v", id, k, err)
		}
		m.nodes[id].props[k] = v
		return fmt.Sprintf("SetNodeProperty(%d,%s,%s)", id, k, v)
	default:
		id, _ := pickNode(rng, m)
		k := modelPropNames[rng.IntN(len(modelPropNames))]
		if err := tx.RemoveNodeProperty(id, k); err != nil {
			t.Fatalf("RemoveNodeProperty(%d,%s): %v", id, k, err)
		}
		delete(m.nodes[id].props, k)
		return fmt.Sprintf("RemoveNodeProperty(%d,%s)", id, k)
	}
}

func equalLabels(a, b []string) bool { return slices.Equal(a, b) || (len(a) == 0 && len(b) == 0) }

func propsString(p Properties) string {
	keys := slices.Sorted(maps.Keys(p))
	var sb strings.Builder
	for _, k := range keys {
		s := p[k].String()
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		fmt.Fprintf(&sb, "%s=%s ", k, s)
	}
	return sb.String()
}

func idsEqual[T comparable](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || slices.Equal(a, b))
}

// compareTx checks every read API of tx against m.
func compareTx(tx *Tx, m *graphModel, rng *rand.Rand) error {
	ids := m.nodeIDs()
	got, err := tx.AllNodeIDsOrdered()
	if err != nil {
		return fmt.Errorf("AllNodeIDsOrdered: %w", err)
	}
	if !idsEqual(got, ids) {
		return fmt.Errorf("AllNodeIDsOrdered = %v, want %v", got, ids)
	}
	if tx.NodeCount() != uint64(len(ids)) || tx.EdgeCount() != uint64(len(m.edges)) {
		return fmt.Errorf("counts = %d nodes %d edges, want %d %d", tx.NodeCount(), tx.EdgeCount(), len(ids), len(m.edges))
	}
	// nodes via the iterator and via GetNode
	i := 0
	for n, err := range tx.Nodes() {
		if err != nil {
			return fmt.Errorf("Nodes(): %w", err)
		}
		if i >= len(ids) || n.ID != ids[i] {
			return fmt.Errorf("Nodes() item %d is %d", i, n.ID)
		}
		mn := m.nodes[n.ID]
		if !equalLabels(n.Labels, mn.labels) || !propsEqual(n.Properties, mn.props) {
			return fmt.Errorf("node %d = %v {%s}, want %v {%s}", n.ID, n.Labels, propsString(n.Properties), mn.labels, propsString(mn.props))
		}
		i++
	}
	if i != len(ids) {
		return fmt.Errorf("Nodes() yielded %d, want %d", i, len(ids))
	}
	for _, id := range ids {
		n, err := tx.GetNode(id)
		if err != nil {
			return fmt.Errorf("GetNode(%d): %w", id, err)
		}
		mn := m.nodes[id]
		if !equalLabels(n.Labels, mn.labels) || !propsEqual(n.Properties, mn.props) {
			return fmt.Errorf("GetNode(%d) = %v {%s}, want %v {%s}", id, n.Labels, propsString(n.Properties), mn.labels, propsString(mn.props))
		}
	}
	if _, err := tx.GetNode(m.nextNode); !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("GetNode(next id) = %v, want ErrNotFound", err)
	}
	// edges
	eids := m.edgeIDs()
	i = 0
	for e, err := range tx.Edges() {
		if err != nil {
			return fmt.Errorf("Edges(): %w", err)
		}
		if i >= len(eids) || e.ID != eids[i] {
			return fmt.Errorf("Edges() item %d is %d, want %v", i, e.ID, eids)
		}
		me := m.edges[e.ID]
		if e.From != me.from || e.To != me.to || e.Label != me.label || !propsEqual(e.Properties, me.props) {
			return fmt.Errorf("edge %d = %+v, want %+v", e.ID, e, me)
		}
		i++
	}
	if i != len(eids) {
		return fmt.Errorf("Edges() yielded %d, want %d", i, len(eids))
	}
	for _, id := range eids {
		e, err := tx.GetEdge(id)
		me := m.edges[id]
		if err != nil || e.From != me.from || e.To != me.to || e.Label != me.label {
			return fmt.Errorf("GetEdge(%d) = %+v, %v", id, e, err)
		}
	}
	// adjacency
	out := map[NodeID][]NodeID{}
	in := map[NodeID][]NodeID{}
	outE := map[NodeID][]EdgeID{}
	for _, eid := range eids {
		e := m.edges[eid]
		out[e.from] = append(out[e.from], e.to)
		in[e.to] = append(in[e.to], e.from)
		outE[e.from] = append(outE[e.from], eid)
	}
	for _, id := range ids {
		nb, err := tx.Neighbors(id)
		if err != nil || !idsEqual(nb, out[id]) {
			return fmt.Errorf("Neighbors(%d) = %v, %v; want %v", id, nb, err, out[id])
		}
		inb, err := tx.IncomingNeighbors(id)
		if err != nil || !idsEqual(inb, in[id]) {
			return fmt.Errorf("IncomingNeighbors(%d) = %v, %v; want %v", id, inb, err, in[id])
		}
		oe, err := tx.OutgoingEdges(id)
		if err != nil || !idsEqual(oe, outE[id]) {
			return fmt.Errorf("OutgoingEdges(%d) = %v, %v; want %v", id, oe, err, outE[id])
		}
	}
	if _, err := tx.Neighbors(m.nextNode); !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("Neighbors(missing) = %v", err)
	}
	// labels
	for _, l := range modelLabels {
		var want []NodeID
		for _, id := range ids {
			if slices.Contains(m.nodes[id].labels, l) {
				want = append(want, id)
			}
		}
		got, err := tx.NodesByLabel(l)
		if err != nil || !idsEqual(got, want) {
			return fmt.Errorf("NodesByLabel(%q) = %v, %v; want %v", l, got, err, want)
		}
	}
	// properties: every (name, value) present in the model, plus a few random ones
	type nv struct {
		name string
		v    PropertyValue
	}
	var probes []nv
	for _, id := range ids {
		for k, v := range m.nodes[id].props {
			if rng.IntN(4) == 0 {
				probes = append(probes, nv{k, v})
			}
		}
	}
	if len(probes) > 30 { // unindexed lookups scan every node: keep this linear
		rng.Shuffle(len(probes), func(i, j int) { probes[i], probes[j] = probes[j], probes[i] })
		probes = probes[:30]
	}
	for range 5 {
		probes = append(probes, nv{modelPropNames[rng.IntN(len(modelPropNames))], randValue(rng)})
	}
	for _, p := range probes {
		var want []NodeID
		for _, id := range ids {
			if v, ok := m.nodes[id].props[p.name]; ok && v.Equal(p.v) {
				want = append(want, id)
			}
		}
		got, err := tx.NodesByProperty(p.name, p.v)
		if err != nil {
			return fmt.Errorf("NodesByProperty(%s, %s): %w", p.name, p.v, err)
		}
		if !idsEqual(got, want) {
			return fmt.Errorf("NodesByProperty(%s, %.40s) (indexed=%v) = %v, want %v", p.name, p.v.String(), m.indexes[p.name], got, want)
		}
	}
	// ranges
	maxID := int(m.nextNode) + 2
	for range 4 {
		lo, hi := NodeID(rng.IntN(maxID)), NodeID(rng.IntN(maxID))
		var want []NodeID
		for _, id := range ids {
			if id >= lo && id <= hi {
				want = append(want, id)
			}
		}
		got, err := tx.NodesInRange(lo, hi)
		if err != nil || !idsEqual(got, want) {
			return fmt.Errorf("NodesInRange(%d,%d) = %v, %v; want %v", lo, hi, got, err, want)
		}
		var from []NodeID
		for _, id := range ids {
			if id >= lo {
				from = append(from, id)
			}
		}
		if got, err := tx.NodesFrom(lo); err != nil || !idsEqual(got, from) {
			return fmt.Errorf("NodesFrom(%d) = %v, %v; want %v", lo, got, err, from)
		}
	}
	for _, n := range []int{0, 1, 3, len(ids), len(ids) + 3} {
		got, err := tx.FirstNNodes(n)
		want := ids[:min(n, len(ids))]
		if err != nil || !idsEqual(got, want) {
			return fmt.Errorf("FirstNNodes(%d) = %v, %v; want %v", n, got, err, want)
		}
		got, err = tx.LastNNodes(n)
		want = slices.Clone(ids[len(ids)-min(n, len(ids)):])
		slices.Reverse(want)
		if err != nil || !idsEqual(got, want) {
			return fmt.Errorf("LastNNodes(%d) = %v, %v; want %v", n, got, err, want)
		}
	}
	first, ok, err := tx.FirstNode()
	if err != nil || ok != (len(ids) > 0) || (ok && first != ids[0]) {
		return fmt.Errorf("FirstNode = %d %v %v", first, ok, err)
	}
	last, ok, err := tx.LastNode()
	if err != nil || ok != (len(ids) > 0) || (ok && last != ids[len(ids)-1]) {
		return fmt.Errorf("LastNode = %d %v %v", last, ok, err)
	}
	return nil
}

func propsEqual(a, b Properties) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !v.Equal(w) {
			return false
		}
	}
	return true
}

// compareDB checks a committed state, including Info and index statistics.
func compareDB(db *DB, m *graphModel, rng *rand.Rand) error {
	if err := db.View(func(tx *Tx) error { return compareTx(tx, m, rng) }); err != nil {
		return err
	}
	info, err := db.Info()
	if err != nil {
		return fmt.Errorf("Info: %w", err)
	}
	if info.NodeCount != uint64(len(m.nodes)) || info.EdgeCount != uint64(len(m.edges)) {
		return fmt.Errorf("Info counts %d/%d, want %d/%d", info.NodeCount, info.EdgeCount, len(m.nodes), len(m.edges))
	}
	labels := map[string]uint64{}
	for _, n := range m.nodes {
		for _, l := range n.labels {
			labels[l]++
		}
	}
	elabels := map[string]uint64{}
	for _, e := range m.edges {
		elabels[e.label]++
	}
	toMap := func(lc []LabelCount) map[string]uint64 {
		out := map[string]uint64{}
		for _, c := range lc {
			out[c.Label] = c.Count
		}
		return out
	}
	if got := toMap(info.Labels); !maps.Equal(got, labels) {
		return fmt.Errorf("Info.Labels = %v, want %v", got, labels)
	}
	if got := toMap(info.EdgeLabels); !maps.Equal(got, elabels) {
		return fmt.Errorf("Info.EdgeLabels = %v, want %v", got, elabels)
	}
	wantIdx := slices.Sorted(maps.Keys(m.indexes))
	if !idsEqual(info.PropertyIndexes, wantIdx) {
		return fmt.Errorf("Info.PropertyIndexes = %v, want %v", info.PropertyIndexes, wantIdx)
	}
	stats, err := db.IndexStatistics()
	if err != nil {
		return fmt.Errorf("IndexStatistics: %w", err)
	}
	for _, s := range stats {
		name, ok := strings.CutPrefix(s.Name, "property:")
		if !ok {
			continue
		}
		var n uint64
		for _, nd := range m.nodes {
			if _, ok := nd.props[name]; ok {
				n++
			}
		}
		if s.Entries != n {
			return fmt.Errorf("index %s has %d entries, want %d", name, s.Entries, n)
		}
	}
	return nil
}

func modelSeeds(t *testing.T) []uint64 {
	if s := os.Getenv("SOMBRA_MODEL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return []uint64{v}
	}
	n := 4
	if testing.Short() {
		n = 2
	}
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = rand.Uint64()
	}
	return seeds
}

func TestModel(t *testing.T) {
	for i, seed := range modelSeeds(t) {
		cfg := Config{WALAutoCheckpoint: -1}
		switch i % 4 {
		case 1:
			cfg = Config{CacheSize: 1, WALAutoCheckpoint: 50} // 16-page cache, auto checkpoints
		case 2:
			cfg = Config{PageSize: 8192}
		case 3:
			cfg = Config{CacheSize: 64 << 10, WALAutoCheckpoint: 7}
		}
		// held snapshots make full checkpoints wait the whole busy timeout
		cfg.BusyTimeout = 20 * time.Millisecond
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			steps := 150
			if s, err := strconv.Atoi(os.Getenv("SOMBRA_MODEL_STEPS")); err == nil {
				steps = s
			}
			runModel(t, seed, cfg, steps)
		})
	}
}

func runModel(t *testing.T, seed uint64, cfg Config, steps int) { runModelOps(t, seed, cfg, steps, 12) }

// modelSpillHook, if set, sees every write transaction of the model test
// just before it ends (TestModelSpill counts spills with it).
var modelSpillHook func(tx *Tx)

// modelBeginHook, if set, sees every write transaction of the model test
// as it begins (TestModelWriteBuffer shrinks its write buffer with it).
var modelBeginHook func(tx *Tx, rng *rand.Rand)

// runModelOps runs the model test with write transactions of up to
// maxOps operations.
func runModelOps(t *testing.T, seed uint64, cfg Config, steps, maxOps int) {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	var trace []string
	defer func() {
		if t.Failed() {
			n := max(0, len(trace)-30)
			t.Logf("seed %d (replay: SOMBRA_MODEL_SEED=%d go test -run TestModel ./engine); cfg %+v; last ops:\n%s",
				seed, seed, cfg, strings.Join(trace[n:], "\n"))
		}
	}()
	path := tempDB(t)
	db := mustOpen(t, path, cfg)
	defer func() { db.Close() }()
	m := newGraphModel()

	type heldSnap struct {
		tx    *Tx
		m     *graphModel
		until int
	}
	var snaps []heldSnap

	check := func(where string) {
		t.Helper()
		if err := compareDB(db, m, rng); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
	}
	for step := 0; step < steps; step++ {
		switch r := rng.IntN(100); {
		case r < 70: // a write transaction, committed or rolled back
			tx, err := db.BeginTransaction()
			if err != nil {
				t.Fatal(err)
			}
			if modelBeginHook != nil {
				modelBeginHook(tx, rng)
			}
			work := m.clone()
			nops := 1 + rng.IntN(maxOps)
			for j := 0; j < nops; j++ {
				trace = append(trace, fmt.Sprintf("step %d: %s", step, modelOp(t, rng, tx, work)))
			}
			if rng.IntN(8) == 0 {
				// read-your-writes inside the write transaction
				if err := compareTx(tx, work, rng); err != nil {
					t.Fatalf("step %d inside write tx: %v", step, err)
				}
			}
			if modelSpillHook != nil {
				modelSpillHook(tx)
			}
			if rng.IntN(7) == 0 {
				trace = append(trace, fmt.Sprintf("step %d: rollback", step))
				if err := tx.Rollback(); err != nil {
					t.Fatal(err)
				}
			} else {
				trace = append(trace, fmt.Sprintf("step %d: commit", step))
				if err := tx.Commit(); err != nil {
					t.Fatalf("commit: %v", err)
				}
				m = work
			}
			if err := tx.Commit(); !errors.Is(err, ErrTxClosed) {
				t.Fatalf("second commit = %v, want ErrTxClosed", err)
			}
			if _, err := tx.CreateNode("x", nil); !errors.Is(err, ErrTxClosed) {
				t.Fatalf("write after commit = %v, want ErrTxClosed", err)
			}
			check(fmt.Sprintf("step %d", step))
		case r < 76:
			name := modelPropNames[rng.IntN(len(modelPropNames))]
			trace = append(trace, fmt.Sprintf("step %d: CreatePropertyIndex(%s)", step, name))
			if err := db.CreatePropertyIndex(name); err != nil {
				t.Fatal(err)
			}
			m.indexes[name] = true
			check(fmt.Sprintf("step %d after CreatePropertyIndex(%s)", step, name))
		case r < 78 && len(m.indexes) > 0:
			name := slices.Sorted(maps.Keys(m.indexes))[0]
			trace = append(trace, fmt.Sprintf("step %d: DropPropertyIndex(%s)", step, name))
			if err := db.DropPropertyIndex(name); err != nil {
				t.Fatal(err)
			}
			delete(m.indexes, name)
			check(fmt.Sprintf("step %d after DropPropertyIndex(%s)", step, name))
		case r < 88:
			mode := CheckpointMode(rng.IntN(4))
			trace = append(trace, fmt.Sprintf("step %d: checkpoint %s (held snapshots %d)", step, mode, len(snaps)))
			_, err := db.CheckpointWithMode(mode)
			if err != nil && !(len(snaps) > 0 && errors.Is(err, ErrBusy)) {
				t.Fatalf("checkpoint %s: %v", mode, err)
			}
			check(fmt.Sprintf("step %d after checkpoint %s", step, mode))
		case r < 93:
			// hold a read snapshot across later commits and checkpoints
			tx, err := db.BeginReadTransaction()
			if err != nil {
				t.Fatal(err)
			}
			snaps = append(snaps, heldSnap{tx: tx, m: m.clone(), until: step + 1 + rng.IntN(10)})
		case r < 96:
			if len(snaps) > 0 {
				continue // cannot close with open snapshots
			}
			trace = append(trace, fmt.Sprintf("step %d: close+reopen", step))
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = mustOpen(t, path, cfg)
			check(fmt.Sprintf("step %d after reopen", step))
		default:
			// a second connection sees the same committed state
			db2 := mustOpen(t, path, cfg)
			if err := compareDB(db2, m, rng); err != nil {
				t.Fatalf("step %d second connection: %v", step, err)
			}
			db2.Close()
		}
		kept := snaps[:0]
		for _, s := range snaps {
			if s.until > step {
				kept = append(kept, s)
				continue
			}
			if err := compareTx(s.tx, s.m, rng); err != nil {
				t.Fatalf("step %d: held snapshot diverged: %v", step, err)
			}
			s.tx.Rollback()
		}
		snaps = kept
	}
	for _, s := range snaps {
		if err := compareTx(s.tx, s.m, rng); err != nil {
			t.Fatalf("end: held snapshot diverged: %v", err)
		}
		s.tx.Rollback()
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, path, cfg)
	check("final reopen")
	if _, err := db.CheckpointWithMode(CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, path, Config{ReadOnly: true})
	check("read-only reopen after truncate")
}

// Small pages: a record that fitted inline in a 4 KiB page once overran a
// 1 KiB page (the inline limit did not depend on the page size).
func TestModelSmallPages(t *testing.T) {
	for _, ps := range []int{1024, 2048} {
		seed := rand.Uint64()
		t.Run(fmt.Sprintf("page=%d/seed=%d", ps, seed), func(t *testing.T) {
			runModel(t, seed, Config{PageSize: ps, BusyTimeout: 20 * time.Millisecond, WALAutoCheckpoint: 40}, 60)
		})
	}
}
