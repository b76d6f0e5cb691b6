package compact

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/sombradb/sombra/engine"
)

// TestCompactCancelled: a compaction cancelled while it writes the new file
// returns context.Canceled, removes the new file and leaves the database
// file as it was.
func TestCompactCancelled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *engine.Tx) error {
		for i := 0; i < 3000; i++ {
			if _, err := tx.CreateNode("N", engine.Properties{"pad": engine.StringValue(fmt.Sprintf("%0200d", i))}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = CompactContext(ctx, path, Options{Progress: func(done, _ int64) {
		if done > 0 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("the database file changed")
	}
	if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the new file was left: %v", err)
	}
}
