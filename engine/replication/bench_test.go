package replication

import (
	"context"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
)

func benchCommit(b *testing.B, db *engine.DB) {
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		err := db.Update(func(tx *engine.Tx) error {
			_, err := tx.CreateNode("item", engine.Properties{"i": engine.IntValue(int64(i))})
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
}

// BenchmarkCommit compares the latency of a one-node commit without
// replication, with async replication and with sync replication (each
// commit waits for JetStream's acknowledgement), NATS on loopback.
func BenchmarkCommit(b *testing.B) {
	b.Run("local", func(b *testing.B) {
		db, err := engine.Open(dbPath(b, "l.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		benchCommit(b, db)
	})
	for _, mode := range []Mode{Async, Sync} {
		b.Run(mode.String(), func(b *testing.B) {
			s := startNATS(b, b.TempDir(), 0)
			p := openMember(b, dbPath(b, "p.db"), testConfig(s.ClientURL(), "bench", "p", Primary, mode))
			waitRole(b, p, rolePrimary, 5*time.Second)
			benchCommit(b, p.db)
		})
	}
}

// BenchmarkReplicationLag commits in async mode as fast as it can with a
// replica following, and reports the replica's commit-to-apply delay
// (mean of samples taken every 10 commits) and the time the replica
// needs after the last commit to have applied everything.
func BenchmarkReplicationLag(b *testing.B) {
	s := startNATS(b, b.TempDir(), 0)
	p := openMember(b, dbPath(b, "p.db"), testConfig(s.ClientURL(), "lag", "p", Primary, Async))
	r := openMember(b, dbPath(b, "r.db"), testConfig(s.ClientURL(), "lag", "r", Replica, Async))
	var sum time.Duration
	samples := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		err := p.db.Update(func(tx *engine.Tx) error {
			_, err := tx.CreateNode("item", engine.Properties{"i": engine.IntValue(int64(i))})
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		if i%10 == 9 {
			sum += r.node.Status().Lag
			samples++
		}
	}
	last, _ := p.db.LastLSN()
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.node.WaitApplied(ctx, last); err != nil {
		b.Fatal(err)
	}
	drain := time.Since(t0)
	b.StopTimer()
	if samples > 0 {
		b.ReportMetric(float64(sum.Microseconds())/float64(samples), "lag-µs")
	}
	b.ReportMetric(float64(drain.Microseconds()), "drain-µs")
}

// BenchmarkFailover measures a clean hand-over: the primary closes
// (handing its lease back) and a caught-up replica with Failover takes
// over. A crashed primary's lease must lapse first: add the lease TTL
// (TestPrimaryKilledDuringSyncWrites logs that case).
func BenchmarkFailover(b *testing.B) {
	s := startNATS(b, b.TempDir(), 0)
	url := s.ClientURL()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		name := "fo" + string(rune('a'+i%26)) + time.Now().Format("150405.000000")
		name = sanitize(name)
		p, err := tryOpenMember(dbPath(b, "p.db"), testConfig(url, name, "p", Primary, Sync))
		if err != nil {
			b.Fatal(err)
		}
		cfg := testConfig(url, name, "r", Replica, Sync)
		cfg.Failover = true
		r, err := tryOpenMember(dbPath(b, "r.db"), cfg)
		if err != nil {
			b.Fatal(err)
		}
		lsn := writeNodes(b, p.db, 0, 5)
		waitApplied(b, r, lsn)
		t0 := time.Now()
		p.db.Close()
		waitRole(b, r, rolePrimary, 10*time.Second)
		total += time.Since(t0)
		r.db.Close()
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "failover-µs")
}

func sanitize(s string) string {
	out := []byte(s)
	for i, c := range out {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			out[i] = '_'
		}
	}
	return string(out)
}
