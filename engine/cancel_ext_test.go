package engine_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/integrity"
)

// TestCheckpointContextStopsWaiting: a truncate checkpoint waiting (up to
// a 30 s busy timeout) for a reader returns soon after its context is
// cancelled, with context.Canceled.
func TestCheckpointContextStopsWaiting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	db, err := engine.OpenWithConfig(path, engine.Config{BusyTimeout: 30 * time.Second, WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reader, err := engine.OpenWithConfig(path, engine.Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	rtx, err := reader.BeginReadTransaction()
	if err != nil {
		t.Fatal(err)
	}
	defer rtx.Rollback()
	if err := db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("N", nil); return err }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = db.CheckpointContext(ctx, engine.CheckpointTruncate)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("returned %v after it started, the cancel came at 100ms", took)
	}
}

// TestRebuildIndexesCancelled: a rebuild cancelled in mid-run is rolled
// back (the database stays consistent) and returns context.Canceled.
func TestRebuildIndexesCancelled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.CreatePropertyIndex("k"); err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *engine.Tx) error {
		for i := 0; i < 2000; i++ {
			if _, err := tx.CreateNode("L", engine.Properties{"k": engine.IntValue(int64(i % 7))}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var total int64
	err = db.RebuildAllIndexesContext(ctx, func(done, tot int64) {
		total = tot
		if done > 0 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if total != 2000 {
		t.Errorf("progress total %d, want 2000 records", total)
	}
	rep, err := integrity.CheckDB(db, integrity.Options{Full: true})
	if err != nil || !rep.IsHealthy() {
		t.Fatalf("after a cancelled rebuild: %v %+v", err, rep.Issues)
	}
	if err := db.RebuildAllIndexesContext(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}
