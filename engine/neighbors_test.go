package engine

import (
	"errors"
	"slices"
	"testing"
)

// NeighborsFunc and NeighborSeq agree with Neighbors (order included), stop
// when asked, report a missing node, and allocate nothing.
func TestNeighborsFunc(t *testing.T) {
	db := mustOpen(t, tempDB(t), Config{})
	defer db.Close()
	var hub, lonely NodeID
	err := db.Update(func(tx *Tx) error {
		var err error
		if hub, err = tx.CreateNode("H", nil); err != nil {
			return err
		}
		if lonely, err = tx.CreateNode("L", nil); err != nil {
			return err
		}
		for i := 0; i < 500; i++ { // several leaves of adjacency entries
			n, err := tx.CreateNode("N", nil)
			if err != nil {
				return err
			}
			if _, err := tx.CreateEdge(hub, n, "E", nil); err != nil {
				return err
			}
			if i%3 == 0 {
				if _, err := tx.CreateEdge(n, hub, "B", nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginReadTransaction()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, dir := range []string{"out", "in"} {
		want, err := tx.Neighbors(hub)
		fn := tx.NeighborsFunc
		if dir == "in" {
			want, err = tx.IncomingNeighbors(hub)
			fn = tx.IncomingNeighborsFunc
		}
		if err != nil {
			t.Fatal(err)
		}
		var got []NodeID
		if err := fn(hub, func(n NodeID) bool { got = append(got, n); return true }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) || len(want) == 0 {
			t.Fatalf("%s: NeighborsFunc gave %d ids, Neighbors %d (or order differs)", dir, len(got), len(want))
		}
	}
	var seq []NodeID
	for n, err := range tx.NeighborSeq(hub) {
		if err != nil {
			t.Fatal(err)
		}
		seq = append(seq, n)
		if len(seq) == 7 {
			break
		}
	}
	if all, _ := tx.Neighbors(hub); !slices.Equal(seq, all[:7]) {
		t.Fatalf("NeighborSeq with break: %v", seq)
	}
	calls := 0
	if err := tx.NeighborsFunc(hub, func(NodeID) bool { calls++; return calls < 3 }); err != nil || calls != 3 {
		t.Fatalf("stop after 3: %d calls, %v", calls, err)
	}
	if err := tx.NeighborsFunc(lonely, func(NodeID) bool { t.Fatal("lonely has no edges"); return true }); err != nil {
		t.Fatalf("node without edges: %v", err)
	}
	if err := tx.NeighborsFunc(1<<40, func(NodeID) bool { return true }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing node: %v, want ErrNotFound", err)
	}
	for _, err := range tx.NeighborSeq(1 << 40) {
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("NeighborSeq of a missing node: %v", err)
		}
	}
	count := 0
	visit := func(NodeID) bool { count++; return true }
	allocs := testing.AllocsPerRun(100, func() {
		if err := tx.NeighborsFunc(hub, visit); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("NeighborsFunc allocates %.1f times per call", allocs)
	}
}
