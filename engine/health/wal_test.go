package health

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
)

func checkNamed(t *testing.T, r *Report, name string) Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s check", name)
	return Check{}
}

// TestWALAdviceWorks (issue 12 #9): a large WAL is answered with advice
// that, followed, clears the warning (truncate: full leaves the file its
// size); and checkpoint_age counts from the oldest waiting frame, so a
// database written once after a long quiet spell is not degraded.
func TestWALAdviceWorks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	db, err := engine.OpenWithConfig(path, engine.Config{WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	commit := func() {
		if err := db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("N", nil); return err }); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ {
		commit()
	}
	st, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{WALThreshold: st.Size() / 2} // degraded, not unhealthy
	r, err := CheckFile(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	c := checkNamed(t, r, CheckWALSize)
	if c.Status != Degraded || c.Remedy != RemedyCheckpointTruncate || strings.Contains(c.Message, "sombra-") {
		t.Fatalf("wal_size: %+v", c)
	}
	if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	if r, err = CheckFile(path, opts); err != nil {
		t.Fatal(err)
	}
	if c := checkNamed(t, r, CheckWALSize); c.Status != Healthy {
		t.Fatalf("after following the advice: %+v", c)
	}

	// Checkpointed long ago (here: 1.2 s, threshold 1 s), one frame now.
	time.Sleep(1200 * time.Millisecond)
	commit()
	if r, err = CheckFile(path, Options{CheckpointAge: time.Second}); err != nil {
		t.Fatal(err)
	}
	if c := checkNamed(t, r, CheckCheckpointAge); c.Status != Healthy {
		t.Fatalf("one fresh frame after a quiet spell: %+v", c)
	}
	time.Sleep(1200 * time.Millisecond)
	if r, err = CheckFile(path, Options{CheckpointAge: time.Second}); err != nil {
		t.Fatal(err)
	}
	if c := checkNamed(t, r, CheckCheckpointAge); c.Status != Degraded {
		t.Fatalf("a frame waiting 1.2 s past a 1 s threshold: %+v", c)
	}
}
