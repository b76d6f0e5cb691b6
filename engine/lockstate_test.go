package engine_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sombradb/sombra/engine"
)

func TestReadLockState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "locks.db")
	// No coordination file yet: nobody holds anything, and looking does
	// not create one.
	st, err := engine.ReadLockState(path)
	if err != nil || st.InUse || st.Writer.Held || len(st.ReaderPIDs) != 0 {
		t.Fatalf("no shm: %+v %v", st, err)
	}
	if _, err := os.Stat(path + "-shm"); !os.IsNotExist(err) {
		t.Fatal("ReadLockState created the coordination file")
	}

	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pid := os.Getpid()
	st, err = db.LockState()
	if err != nil || !st.InUse || st.Writer.Held || st.Exclusive.Held || st.Checkpointer.Held || len(st.ReaderPIDs) != 0 {
		t.Fatalf("idle: %+v %v", st, err)
	}

	tx, err := db.BeginTransaction()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.CreateNode("N", nil); err != nil {
		t.Fatal(err)
	}
	st, _ = engine.ReadLockState(path)
	if !st.Writer.Held || st.Writer.PID != pid {
		t.Errorf("writing: %+v", st)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	st, _ = db.LockState()
	if st.Writer.Held || st.Writer.PID != pid {
		t.Errorf("after commit the lock is free and the last writer remembered: %+v", st)
	}

	r, err := engine.OpenWithConfig(path, engine.Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rtx, err := r.BeginReadTransaction()
	if err != nil {
		t.Fatal(err)
	}
	st, _ = db.LockState()
	if !slices.Equal(st.ReaderPIDs, []int{pid}) {
		t.Errorf("reading: %+v", st)
	}
	rtx.Rollback()
	st, _ = db.LockState()
	if len(st.ReaderPIDs) != 0 {
		t.Errorf("after the read: %+v", st)
	}
}
