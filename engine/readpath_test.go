package engine

import (
	"testing"
)

// A checkpoint keeps this connection's cached pages: reads after it hit
// the cache (they went back to the disk for every page before), and they
// see what the checkpoint wrote, not the images cached before it.
func TestCheckpointKeepsCachedPages(t *testing.T) {
	path := tempDB(t)
	db := mustOpen(t, path, Config{WALAutoCheckpoint: 1 << 30})
	defer db.Close()
	const n = 3000
	err := db.Update(func(tx *Tx) error {
		for i := 0; i < n; i++ {
			if _, err := tx.CreateNode("N", Properties{"v": IntValue(int64(i))}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	readAll := func(want func(NodeID) int64) {
		t.Helper()
		err := db.View(func(tx *Tx) error {
			for nd, err := range tx.Nodes() {
				if err != nil {
					return err
				}
				if v, _ := nd.Properties["v"].Int(); v != want(nd.ID) {
					t.Fatalf("node %d: v=%d, want %d", nd.ID, v, want(nd.ID))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	orig := func(id NodeID) int64 { return int64(id) - 1 }
	if _, err := db.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	readAll(orig)
	misses := db.p.CacheStats().Misses
	// Change a node on some page, then checkpoint: that page now has a
	// new image in the file; every other page's image is unchanged.
	const changed = NodeID(n / 2)
	if err := db.SetNodeProperty(changed, "v", IntValue(-7)); err != nil {
		t.Fatal(err)
	}
	readAll(func(id NodeID) int64 {
		if id == changed {
			return -7
		}
		return orig(id)
	})
	if _, err := db.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if err := db.SetNodeProperty(changed+1, "v", IntValue(-8)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	readAll(func(id NodeID) int64 {
		switch id {
		case changed:
			return -7
		case changed + 1:
			return -8
		}
		return orig(id)
	})
	if got := db.p.CacheStats().Misses - misses; got > 2 {
		t.Fatalf("%d cache misses reading the graph after two checkpoints, want at most 2 (the header pages)", got)
	}

	// Another connection's checkpoint retires this connection's images:
	// it reads what that connection wrote.
	other := mustOpen(t, path, Config{WALAutoCheckpoint: 1 << 30})
	defer other.Close()
	if err := other.SetNodeProperty(changed, "v", IntValue(-9)); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	readAll(func(id NodeID) int64 {
		switch id {
		case changed:
			return -9
		case changed + 1:
			return -8
		}
		return orig(id)
	})
}

// A read transaction is one allocation: the engine's Tx, with the pager's
// snapshot embedded in it (BeginReadInto). Snapshots of the same
// connection still come and go independently.
func TestReadTransactionAllocatesOnce(t *testing.T) {
	db := mustOpen(t, tempDB(t), Config{})
	defer db.Close()
	var id NodeID
	if err := db.Update(func(tx *Tx) (err error) { id, err = tx.CreateNode("N", nil); return err }); err != nil {
		t.Fatal(err)
	}
	noop := func(*Tx) error { return nil }
	if allocs := testing.AllocsPerRun(100, func() {
		if err := db.View(noop); err != nil {
			t.Fatal(err)
		}
	}); allocs > 1 {
		t.Fatalf("an empty View allocates %.1f times", allocs)
	}
	outer, err := db.BeginReadTransaction()
	if err != nil {
		t.Fatal(err)
	}
	inner, err := db.BeginReadTransaction()
	if err != nil {
		t.Fatal(err)
	}
	if err := outer.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := inner.GetNode(id); err != nil {
		t.Fatalf("a snapshot after another one of the connection ended: %v", err)
	}
	if err := inner.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := outer.GetNode(id); err == nil {
		t.Fatal("a read transaction answered after it ended")
	}
}
