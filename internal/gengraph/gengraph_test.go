package gengraph

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"math"
	"slices"
	"testing"
)

// streamHash returns a hash of the full canonical stream for spec.
func streamHash(t *testing.T, spec Spec) string {
	t.Helper()
	h := sha256.New()
	var buf [8]byte
	putInt := func(x int64) {
		binary.LittleEndian.PutUint64(buf[:], uint64(x))
		h.Write(buf[:])
	}
	putStr := func(s string) {
		putInt(int64(len(s)))
		h.Write([]byte(s))
	}
	err := Generate(spec,
		func(i int, n Node) error {
			putInt(int64(i))
			putStr(n.Label)
			hashProps(h, n.Props, putInt, putStr)
			return nil
		},
		func(e Edge) error {
			putInt(int64(e.From))
			putInt(int64(e.To))
			putStr(e.Label)
			hashProps(h, e.Props, putInt, putStr)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func hashProps(h hash.Hash, p map[string]Value, putInt func(int64), putStr func(string)) {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	putInt(int64(len(keys)))
	for _, k := range keys {
		v := p[k]
		putStr(k)
		putInt(int64(v.Kind))
		switch v.Kind {
		case KindBool:
			if v.B {
				putInt(1)
			} else {
				putInt(0)
			}
		case KindInt:
			putInt(v.I)
		case KindFloat:
			putInt(int64(math.Float64bits(v.F)))
		case KindString:
			putStr(v.S)
		case KindBytes:
			putStr(string(v.Bytes))
		}
	}
}

func TestDeterminism(t *testing.T) {
	spec := Spec{Nodes: 3000, Edges: 15000, Seed: 42}
	a := streamHash(t, spec)
	b := streamHash(t, spec)
	if a != b {
		t.Fatalf("same seed gave different streams: %s vs %s", a, b)
	}
	spec.Seed = 43
	if c := streamHash(t, spec); c == a {
		t.Fatalf("different seeds gave the same stream %s", a)
	}
	// Custom labels change the stream but stay deterministic.
	spec.Labels = []string{"A", "B"}
	spec.EdgeLabels = []string{"X"}
	if first, second := streamHash(t, spec), streamHash(t, spec); first != second {
		t.Fatal("custom labels not deterministic")
	}
}

// TestEdgesIndependentOfNodeCallback checks that skipping the node callback
// does not change the edge stream (edges use their own random stream).
func TestEdgesIndependentOfNodeCallback(t *testing.T) {
	spec := Spec{Nodes: 500, Edges: 2000, Seed: 7}
	var a, b []Edge
	if err := Generate(spec, func(int, Node) error { return nil }, func(e Edge) error { a = append(a, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := Generate(spec, nil, func(e Edge) error { b = append(b, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("len %d vs %d", len(a), len(b))
	}
	for i := range a {
		if a[i].From != b[i].From || a[i].To != b[i].To || a[i].Label != b[i].Label {
			t.Fatalf("edge %d differs: %+v vs %+v", i, a[i], b[i])
		}
	}
}

func TestCountsAndOrder(t *testing.T) {
	spec := Spec{Nodes: 2000, Edges: 9000, Seed: 1}
	nodes, edges := 0, 0
	err := Generate(spec,
		func(i int, n Node) error {
			if edges != 0 {
				t.Fatal("node emitted after an edge")
			}
			if i != nodes {
				t.Fatalf("node index %d, want %d", i, nodes)
			}
			nodes++
			return nil
		},
		func(e Edge) error {
			if nodes != spec.Nodes {
				t.Fatalf("edge emitted before all nodes (%d/%d)", nodes, spec.Nodes)
			}
			if e.From < 0 || e.From >= spec.Nodes || e.To < 0 || e.To >= spec.Nodes {
				t.Fatalf("edge references missing node: %+v", e)
			}
			if e.From == e.To {
				t.Fatalf("self-loop %+v", e)
			}
			edges++
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if nodes != spec.Nodes || edges != spec.Edges {
		t.Fatalf("got %d nodes %d edges, want %d %d", nodes, edges, spec.Nodes, spec.Edges)
	}
}

func TestDegreeSkew(t *testing.T) {
	spec := Spec{Nodes: 20000, Edges: 100000, Seed: 3}
	out := make([]int, spec.Nodes)
	in := make([]int, spec.Nodes)
	err := Generate(spec, nil, func(e Edge) error {
		out[e.From]++
		in[e.To]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	avg := float64(spec.Edges) / float64(spec.Nodes)
	for name, deg := range map[string][]int{"out": out, "in": in} {
		d := slices.Clone(deg)
		slices.SortFunc(d, func(a, b int) int { return b - a })
		top := len(d) / 100
		sum := 0
		for _, x := range d[:top] {
			sum += x
		}
		topAvg := float64(sum) / float64(top)
		zero := 0
		for _, x := range d {
			if x == 0 {
				zero++
			}
		}
		t.Logf("%s-degree: mean %.1f, top 1%% mean %.1f (%.0f%% of edges), max %d, zero-degree nodes %d",
			name, avg, topAvg, 100*float64(sum)/float64(spec.Edges), d[0], zero)
		if topAvg < 10*avg {
			t.Errorf("%s-degree not skewed: top 1%% mean %.1f vs mean %.1f", name, topAvg, avg)
		}
		if d[0] > spec.Edges/20 {
			t.Errorf("%s-degree too concentrated: max %d of %d edges", name, d[0], spec.Edges)
		}
	}
	// Hubs on the out side should mostly differ from hubs on the in side.
	topOut := topK(out, spec.Nodes/100)
	topIn := topK(in, spec.Nodes/100)
	common := 0
	for v := range topOut {
		if topIn[v] {
			common++
		}
	}
	if common > len(topOut)/4 {
		t.Errorf("out and in hubs overlap too much: %d of %d", common, len(topOut))
	}
}

func topK(deg []int, k int) map[int]bool {
	idx := make([]int, len(deg))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return deg[b] - deg[a] })
	m := make(map[int]bool, k)
	for _, i := range idx[:k] {
		m[i] = true
	}
	return m
}

func TestPropertyMix(t *testing.T) {
	spec := Spec{Nodes: 5000, Edges: 5000, Seed: 9}
	kinds := map[string]map[Kind]int{}
	labels := map[string]int{}
	emails := map[string]bool{}
	lastCreated := int64(0)
	decreasing := 0
	err := Generate(spec, func(i int, n Node) error {
		labels[n.Label]++
		for k, v := range n.Props {
			if kinds[k] == nil {
				kinds[k] = map[Kind]int{}
			}
			kinds[k][v.Kind]++
		}
		e := n.Props[PropEmail].S
		if emails[e] {
			t.Fatalf("duplicate email %q", e)
		}
		emails[e] = true
		c := n.Props[PropCreated].I
		if c < lastCreated-86400 {
			decreasing++
		}
		lastCreated = c
		return nil
	}, func(e Edge) error {
		for k, v := range e.Props {
			if kinds["edge."+k] == nil {
				kinds["edge."+k] = map[Kind]int{}
			}
			kinds["edge."+k][v.Kind]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Kind{
		PropName: KindString, PropEmail: KindString, PropAge: KindInt, PropScore: KindFloat,
		PropActive: KindBool, PropCreated: KindInt, PropAvatar: KindBytes,
		"edge." + EdgePropSince: KindInt, "edge." + EdgePropWeight: KindFloat,
	}
	for k, kind := range want {
		if len(kinds[k]) != 1 || kinds[k][kind] == 0 {
			t.Errorf("property %s: kinds %v, want only %v", k, kinds[k], kind)
		}
	}
	for _, k := range []string{PropName, PropEmail, PropAge, PropScore, PropActive, PropCreated, PropNickname} {
		total := 0
		for _, c := range kinds[k] {
			total += c
		}
		if total != spec.Nodes {
			t.Errorf("property %s on %d of %d nodes", k, total, spec.Nodes)
		}
	}
	nick := kinds[PropNickname]
	if nick[KindNull] < spec.Nodes/4 || nick[KindString] < spec.Nodes/4 {
		t.Errorf("nickname null/string mix off: %v", nick)
	}
	if a := kinds[PropAvatar][KindBytes]; a < spec.Nodes/50 || a > spec.Nodes/10 {
		t.Errorf("avatar on %d of %d nodes, want ~5%%", a, spec.Nodes)
	}
	if decreasing != 0 {
		t.Errorf("created not roughly increasing: %d drops", decreasing)
	}
	// Labels: all default labels used, with skewed frequencies.
	if len(labels) != len(DefaultLabels) {
		t.Errorf("labels used: %v", labels)
	}
	first, last := labels[DefaultLabels[0]], labels[DefaultLabels[len(DefaultLabels)-1]]
	if first < 4*last {
		t.Errorf("label frequencies not skewed: %v", labels)
	}
	t.Logf("labels %v; nickname %v; avatar %v", labels, nick, kinds[PropAvatar])
}

func TestEdgeCases(t *testing.T) {
	if err := Generate(Spec{Nodes: 0, Edges: 1}, nil, nil); err == nil {
		t.Error("edges without nodes accepted")
	}
	if err := Generate(Spec{Nodes: -1}, nil, nil); err == nil {
		t.Error("negative nodes accepted")
	}
	if err := Generate(Spec{}, nil, nil); err != nil {
		t.Errorf("empty spec: %v", err)
	}
	// A single node: edges are necessarily self-loops.
	n := 0
	if err := Generate(Spec{Nodes: 1, Edges: 5}, nil, func(e Edge) error {
		if e.From != 0 || e.To != 0 {
			t.Fatalf("bad edge %+v", e)
		}
		n++
		return nil
	}); err != nil || n != 5 {
		t.Errorf("single node: n=%d err=%v", n, err)
	}
	// Two nodes: no self-loops.
	if err := Generate(Spec{Nodes: 2, Edges: 100}, nil, func(e Edge) error {
		if e.From == e.To {
			t.Fatalf("self-loop %+v", e)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	// Callback errors stop generation.
	stop := errors.New("stop")
	calls := 0
	err := Generate(Spec{Nodes: 10, Edges: 10}, nil, func(Edge) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("err=%v calls=%d", err, calls)
	}
}

func TestValueEqual(t *testing.T) {
	vals := []Value{Null(), Bool(true), Bool(false), Int(3), Float(1.5), Float(math.NaN()), String("x"), Bytes([]byte{1})}
	for i, a := range vals {
		for j, b := range vals {
			if a.Equal(b) != (i == j) {
				t.Errorf("%#v.Equal(%#v) = %v", a, b, a.Equal(b))
			}
		}
	}
}

// BenchmarkGenerate measures raw generation cost per edge.
func BenchmarkGenerate(b *testing.B) {
	spec := Spec{Nodes: b.N/5 + 1, Edges: b.N, Seed: 1}
	b.ReportAllocs()
	if err := Generate(spec, func(int, Node) error { return nil }, func(Edge) error { return nil }); err != nil {
		b.Fatal(err)
	}
}
