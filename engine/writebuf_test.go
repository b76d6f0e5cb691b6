package engine

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestModelWriteBuffer runs the model test with write buffers of a few
// hundred bytes to a few KiB, so that buffered puts are applied in sorted
// runs in the middle of transactions (over budget), between reads of the
// same transaction, and while the dirty pages spill (tiny cache).
func TestModelWriteBuffer(t *testing.T) {
	var settles atomic.Int64
	modelBeginHook = func(tx *Tx, rng *rand.Rand) { tx.wbMax = 100 + rng.IntN(4000) }
	modelSpillHook = func(tx *Tx) {
		if tx.pending() {
			settles.Add(1)
		}
	}
	defer func() { modelBeginHook, modelSpillHook = nil, nil }()
	for _, seed := range modelSeeds(t)[:2] {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runModelOps(t, seed, Config{CacheSize: tinyCache, WALAutoCheckpoint: 30, BusyTimeout: 20 * time.Millisecond}, 60, 80)
		})
	}
	if settles.Load() == 0 {
		t.Fatal("no transaction had buffered puts at its end: the test does not test the buffer")
	}
}

// TestWriteBufferBounded checks that a transaction's buffered puts never
// exceed the buffer's budget, and that they are all applied by a read.
func TestWriteBufferBounded(t *testing.T) {
	db, err := OpenWithConfig(t.TempDir()+"/b.db", Config{CacheSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.BeginTransaction()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	limit := tx.wbLimit()
	var ids []NodeID
	for i := 0; i < 20000; i++ {
		id, err := tx.CreateNode("L", Properties{"i": IntValue(int64(i)), "pad": StringValue("0123456789abcdef0123456789")})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		if i > 0 {
			if _, err := tx.CreateEdge(id, ids[(i*7919)%i], "E", nil); err != nil {
				t.Fatal(err)
			}
		}
		if tx.wb.bytes > limit {
			t.Fatalf("write buffer holds %d bytes, budget %d", tx.wb.bytes, limit)
		}
	}
	if !tx.pending() {
		t.Fatal("nothing buffered: the test does not test the buffer")
	}
	got, err := tx.NodesByLabel("L")
	if err != nil || len(got) != len(ids) {
		t.Fatalf("NodesByLabel: %d nodes, %v; want %d", len(got), err, len(ids))
	}
	n, err := tx.IncomingNeighbors(ids[0])
	if err != nil || len(n) == 0 {
		t.Fatalf("IncomingNeighbors(%d) = %v, %v", ids[0], n, err)
	}
}

// TestWriteBufferRefusesLongKeyAtOnce: a put the tree would refuse (an
// index key over btree's limit) fails the call that made it, as it did
// before puts were buffered, not the commit.
func TestWriteBufferRefusesLongKeyAtOnce(t *testing.T) {
	db := mustOpen(t, tempDB(t), Config{})
	defer db.Close()
	name := strings.Repeat("p", 500)
	if err := db.CreatePropertyIndex(name); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTransaction()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.CreateNode("L", Properties{name: StringValue("v")}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("CreateNode with a %d-byte indexed property name = %v, want ErrInvalid", len(name), err)
	}
}
