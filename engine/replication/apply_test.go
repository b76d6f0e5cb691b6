package replication

import (
	"errors"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/encryption"
)

// capture is a Replicator that records what a primary ships, so the
// engine's apply path can be fed real transactions without NATS.
type capture struct{ txs []engine.ReplicatedTx }

func (c *capture) Prepare(string, engine.Config) error { return nil }
func (c *capture) Start(*engine.DB) error              { return nil }
func (c *capture) BeforeCommit() error                 { return nil }
func (c *capture) Close() error                        { return nil }
func (c *capture) Committed(tx engine.ReplicatedTx) func(error) error {
	pages := make([]engine.ReplicatedPage, len(tx.Pages))
	for i, p := range tx.Pages {
		pages[i] = engine.ReplicatedPage{ID: p.ID, Data: append([]byte(nil), p.Data...)}
	}
	tx.Pages = pages
	c.txs = append(c.txs, tx)
	return func(error) error { return nil }
}

// ApplyReplicated installs exactly the next transaction of the same
// database: a skipped LSN, a repeated one, or another file's transaction
// is refused with ErrInvalid and nothing is applied.
func TestApplyReplicatedChecks(t *testing.T) {
	c := &capture{}
	src, err := engine.OpenWithConfig(dbPath(t, "src.db"), engine.Config{Replication: c})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	writeNodes(t, src, 0, 3)
	if len(c.txs) != 3 {
		t.Fatalf("captured %d transactions, want 3", len(c.txs))
	}
	// Another database (its own file id) at LSN 0.
	other, err := engine.Open(dbPath(t, "other.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	err = other.ApplyReplicated(c.txs[0])
	if !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("apply another file's transaction: %v, want ErrInvalid", err)
	}
	if lsn, _ := other.LastLSN(); lsn != 0 {
		t.Fatalf("refused transaction applied: LSN %d", lsn)
	}
	skipped := c.txs[1] // LSN 2 on a database at LSN 0: refused before its file id is even looked at
	if err := other.ApplyReplicated(skipped); !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("apply LSN %d to a database at 0: %v, want ErrInvalid", skipped.LSN, err)
	}
	noHeader := engine.ReplicatedTx{LSN: 1, Time: time.Now(), Pages: c.txs[0].Pages[:0]}
	if err := other.ApplyReplicated(noHeader); !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("apply a transaction without its header page: %v, want ErrInvalid", err)
	}
}

// Replication refuses what it cannot serve, before touching anything.
func TestReplicationConfigRefused(t *testing.T) {
	for _, cfg := range []Config{
		{URL: "nats://127.0.0.1:1", Name: "bad name"},
		{Name: "ok"},
		{URL: "nats://127.0.0.1:1", Name: "ok", LeaseTTL: time.Millisecond},
	} {
		if _, err := New(cfg); !errors.Is(err, engine.ErrInvalid) {
			t.Errorf("New(%+v): %v, want ErrInvalid", cfg, err)
		}
	}
	if _, err := ParseMode("fast"); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("ParseMode(fast): %v", err)
	}
	enc, err := encryption.NewEncryptionConfig().WithKey(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	_, err = engine.OpenWithConfig(dbPath(t, "enc.db"), engine.Config{Encryption: enc, Replication: &capture{}})
	if !errors.Is(err, engine.ErrEncryption) {
		t.Fatalf("replicate an encrypted database: %v, want ErrEncryption", err)
	}
	s := startNATS(t, t.TempDir(), 0)
	n, err := New(testConfig(s.ClientURL(), "ro", "x", Primary, Sync))
	if err != nil {
		t.Fatal(err)
	}
	path := dbPath(t, "ro.db")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := engine.OpenWithConfig(path, engine.Config{ReadOnly: true, Replication: n}); !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("replicate through a read-only connection: %v, want ErrInvalid", err)
	}
	// Every node of a set must use the set's lease TTL.
	openMember(t, dbPath(t, "p.db"), testConfig(s.ClientURL(), "ttl", "p", Primary, Sync))
	cfg := testConfig(s.ClientURL(), "ttl", "r", Replica, Sync)
	cfg.LeaseTTL = 2 * time.Second
	if _, err := tryOpenMember(dbPath(t, "r.db"), cfg); !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("join with another lease TTL: %v, want ErrInvalid", err)
	}
}
