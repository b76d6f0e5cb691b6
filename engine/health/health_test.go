package health

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
)

func TestStatusJSON(t *testing.T) {
	b, err := json.Marshal([]Status{Healthy, Degraded, Unhealthy})
	if err != nil || string(b) != `["healthy","degraded","unhealthy"]` {
		t.Fatalf("%s %v", b, err)
	}
	var back []Status
	if err := json.Unmarshal(b, &back); err != nil || back[2] != Unhealthy {
		t.Fatalf("%v %v", back, err)
	}
	if err := json.Unmarshal([]byte(`["sick"]`), &back); err == nil {
		t.Fatal("accepted an unknown status")
	}
}

func TestVerdictIsWorstCheck(t *testing.T) {
	var r Report
	r.add(Check{Name: "a", Status: Healthy})
	r.add(Check{Name: "b", Status: Degraded})
	r.add(Check{Name: "c", Status: Healthy})
	if r.Status != Degraded || r.Healthy() || !r.Checks[0].Healthy || r.Checks[1].Healthy {
		t.Fatalf("%+v", r)
	}
	r.add(Check{Name: "d", Status: Unhealthy})
	if r.Status != Unhealthy {
		t.Fatalf("%+v", r)
	}
}

func TestCannotCheck(t *testing.T) {
	dir := t.TempDir()
	if _, err := CheckFile(filepath.Join(dir, "nope.db"), Options{}); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := CheckFile(dir, Options{}); !errors.Is(err, engine.ErrNotADatabase) {
		t.Errorf("directory: %v", err)
	}
}

func TestChecksOnFreshDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("N", nil); return err }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	now := time.Now()
	rep, err := CheckFile(path, Options{
		Now:       func() time.Time { return now },
		DiskUsage: func(string) (uint64, uint64, error) { return 10 << 30, 100 << 30, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, c := range rep.Checks {
		names[c.Name] = true
		if !c.Healthy {
			t.Errorf("%s: %+v", c.Name, c)
		}
	}
	for _, n := range []string{CheckHeader, CheckPageChecksums, CheckWALSize, CheckFragmentation, CheckCheckpointAge, CheckDiskSpace, CheckLocks} {
		if !names[n] {
			t.Errorf("check %s missing", n)
		}
	}
	if rep.Status != Healthy || !rep.CheckedAt.Equal(now.UTC()) {
		t.Errorf("%+v", rep)
	}
}
