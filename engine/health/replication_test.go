package health

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/replication"
)

// The replication check reads the node's status file: fresh and caught
// up is healthy, lagging past the threshold or left behind by a killed
// process is degraded, diverged is unhealthy, and no file is no check.
func TestReplicationCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	opts := Options{Now: func() time.Time { return now }, ReplicationLag: 2 * time.Second,
		DiskUsage: func(string) (uint64, uint64, error) { return 1 << 40, 1 << 41, nil }}
	find := func() *Check {
		rep, err := CheckFile(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		for i := range rep.Checks {
			if rep.Checks[i].Name == CheckReplication {
				return &rep.Checks[i]
			}
		}
		return nil
	}
	if c := find(); c != nil {
		t.Fatalf("no status file, yet a check: %+v", c)
	}
	for _, tt := range []struct {
		name string
		st   replication.FileStatus
		want Status
		msg  string
	}{
		{"caught up", replication.FileStatus{Status: replication.Status{Role: "replica", Node: "b", Lag: 100 * time.Millisecond, PrimaryAddr: "http://a"}, UpdatedAt: now}, Healthy, "replica b of http://a"},
		{"lagging", replication.FileStatus{Status: replication.Status{Role: "replica", Node: "b", Lag: 3 * time.Second}, UpdatedAt: now}, Degraded, "above 2s"},
		{"killed", replication.FileStatus{Status: replication.Status{Role: "primary", Node: "a"}, UpdatedAt: now.Add(-time.Minute), PID: 4242}, Degraded, "PID 4242"},
		{"diverged", replication.FileStatus{Status: replication.Status{Role: "diverged", Node: "a", Err: "lost commits"}, UpdatedAt: now}, Unhealthy, "lost commits"},
		{"cut off", replication.FileStatus{Status: replication.Status{Role: "replica", Node: "b", Disconnected: true}, UpdatedAt: now}, Degraded, "not connected to NATS"},
		{"primary", replication.FileStatus{Status: replication.Status{Role: "primary", Node: "a", Mode: "sync", AppliedLSN: 7}, UpdatedAt: now}, Healthy, "LSN 7"},
	} {
		b, _ := json.Marshal(tt.st)
		if err := os.WriteFile(path+replication.StatusFileSuffix, b, 0o644); err != nil {
			t.Fatal(err)
		}
		c := find()
		if c == nil || c.Status != tt.want || !strings.Contains(c.Message, tt.msg) {
			t.Errorf("%s: %+v, want %v with %q", tt.name, c, tt.want, tt.msg)
		}
	}
}
