package shm

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine/vfs"
)

// A log restart stores a new salt and a zero checkpoint count. Another
// process reading (salt, count), or the disk receiving the mapping, between
// the two stores must never see the new salt beside the old log's count:
// it would take the new log's frames as already in the database file. The
// observer reads as Backfill does, salt first; with the stores in the
// wrong order it sees generation s with generation s-1's count.
func TestSetBackfillNeverPairsNewSaltWithOldCount(t *testing.T) {
	s, err := Open(vfs.OS, filepath.Join(t.TempDir(), "x.db-shm"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for gen := uint64(1); !stop.Load(); gen++ {
			_ = s.SetBackfill(gen, 0)
			_ = s.SetBackfill(gen, int(1000+gen))
		}
	}()
	deadline := time.Now().Add(500 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		salt := s.ReadU64(offSalt)
		count := s.ReadU64(offBackfill)
		if salt > 1 && count == 1000+salt-1 {
			stop.Store(true)
			<-done
			t.Fatalf("after %d reads: salt %d beside the previous log's count %d", n, salt, count)
		}
	}
	stop.Store(true)
	<-done
}
