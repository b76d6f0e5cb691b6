package replication

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/internal/natstest"
)

// startNATS runs a real NATS server with JetStream in the test process
// (internal/natstest), on a loopback port (random when port is 0).
func startNATS(t testing.TB, dir string, port int) *server.Server {
	return natstest.Start(t, dir, port)
}

// member is one open node of a replicated set.
type member struct {
	node *Node
	db   *engine.DB
	path string
}

func openMember(t testing.TB, path string, cfg Config) *member {
	t.Helper()
	m, err := tryOpenMember(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.db.Close() })
	return m
}

func tryOpenMember(path string, cfg Config) (*member, error) {
	return tryOpenMemberWith(path, cfg, engine.Config{})
}

func tryOpenMemberWith(path string, cfg Config, ecfg engine.Config) (*member, error) {
	n, err := New(cfg)
	if err != nil {
		return nil, err
	}
	ecfg.Replication = n
	db, err := engine.OpenWithConfig(path, ecfg)
	if err != nil {
		return nil, err
	}
	return &member{node: n, db: db, path: path}, nil
}

func testConfig(url, name, node string, role Role, mode Mode) Config {
	return Config{URL: url, Name: name, Node: node, Address: node + ":8080", Role: role, Mode: mode,
		Logger: testLogger(), LeaseTTL: time.Second, SyncTimeout: 2 * time.Second, SnapshotInterval: -1, StartTimeout: 10 * time.Second}
}

// writeNodes commits count transactions, each creating one node with
// property i; it returns the last LSN.
func writeNodes(t testing.TB, db *engine.DB, from, count int) uint64 {
	t.Helper()
	for i := from; i < from+count; i++ {
		err := db.Update(func(tx *engine.Tx) error {
			_, err := tx.CreateNode("item", engine.Properties{"i": engine.IntValue(int64(i)), "pad": engine.StringValue(fmt.Sprintf("%0100d", i))})
			return err
		})
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	lsn, err := db.LastLSN()
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

func waitApplied(t testing.TB, m *member, lsn uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.node.WaitApplied(ctx, lsn); err != nil {
		t.Fatalf("%s: %v (status %+v)", m.path, err, m.node.Status())
	}
}

// sameGraph checks both databases are at lsn with equal logical hashes.
func sameGraph(t testing.TB, a, b *member, lsn uint64) {
	t.Helper()
	for _, m := range []*member{a, b} {
		got, err := m.db.LastLSN()
		if err != nil || got != lsn {
			t.Fatalf("%s at LSN %d (%v), want %d", m.path, got, err, lsn)
		}
	}
	ha, err := a.db.LogicalHash()
	if err != nil {
		t.Fatal(err)
	}
	hb, err := b.db.LogicalHash()
	if err != nil {
		t.Fatal(err)
	}
	if ha != hb {
		t.Fatalf("logical hash %s (%s) != %s (%s) at LSN %d", ha, a.path, hb, b.path, lsn)
	}
}

func waitRole(t testing.TB, m *member, role string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if m.node.Status().Role == role {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: role %q after %v, want %q (%+v)", m.path, m.node.Status().Role, within, role, m.node.Status())
}

func dbPath(t testing.TB, name string) string { return filepath.Join(t.TempDir(), name) }

func testLogger() *slog.Logger {
	if os.Getenv("REPL_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
