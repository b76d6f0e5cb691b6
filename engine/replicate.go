package engine

// replicate.go is the engine's side of replication (engine/replication
// implements it over NATS JetStream): a hook in the commit path through
// which a primary ships every committed transaction, and the apply path
// through which a replica installs them. Without Config.Replication both
// cost one nil check per commit.

import (
	"fmt"
	"time"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/pager"
)

// ReplicatedTx is one committed transaction as replication ships it.
type ReplicatedTx struct {
	LSN   uint64
	Time  time.Time // commit time on the primary
	Pages []ReplicatedPage
}

// ReplicatedPage is the image of one page a transaction wrote, as stored
// (sealed). Data is shared: it must not be modified.
type ReplicatedPage struct {
	ID   uint64
	Data []byte
}

// Replicator is what Config.Replication takes (engine/replication.New
// builds one). The engine calls it; applications do not.
type Replicator interface {
	// Prepare runs before the database file is opened: a new (or
	// diverged) replica restores a snapshot into path there.
	Prepare(path string, cfg Config) error
	// Start runs once the connection is open, before Open returns.
	Start(db *DB) error
	// BeforeCommit says whether this connection may write now (nil) or
	// why not (an error matching ErrNotPrimary). It runs when a write
	// transaction begins and again under the writer lock before a commit
	// writes anything.
	BeforeCommit() error
	// Committed receives each committed transaction in LSN order, under
	// the writer lock; done runs after the local fsync, with its result,
	// and its error becomes the commit's (sync replication waits there).
	Committed(tx ReplicatedTx) (done func(syncErr error) error)
	// Close stops replication; it runs when the connection closes.
	Close() error
}

// replHook adapts a Replicator to the pager's hook.
type replHook struct{ r Replicator }

func (h replHook) BeforeCommit() error { return h.r.BeforeCommit() }

func (h replHook) Committed(img pager.TxImage) func(error) error {
	tx := ReplicatedTx{LSN: uint64(img.LSN), Time: img.Time, Pages: make([]ReplicatedPage, len(img.Pages))}
	for i, p := range img.Pages {
		tx.Pages[i] = ReplicatedPage{ID: uint64(p.ID), Data: p.Data}
	}
	return h.r.Committed(tx)
}

// checkReplicationConfig refuses, before Prepare connects anywhere, the
// settings replication cannot serve.
func checkReplicationConfig(cfg Config) error {
	if cfg.ReadOnly {
		return fmt.Errorf("replication needs a writable connection (a replica applies the stream): %w", ErrInvalid)
	}
	if cfg.Encryption != nil {
		return fmt.Errorf("replication of an encrypted database is not supported: %w", ErrEncryption)
	}
	return nil
}

// startReplication runs at the end of open.
func (db *DB) startReplication() error {
	r := db.cfg.Replication
	if r == nil {
		return nil
	}
	if db.p.Encrypted() {
		return fmt.Errorf("%s: replication of an encrypted database is not supported: %w", db.p.Path(), ErrEncryption)
	}
	db.p.SetReplicator(replHook{r})
	if err := r.Start(db); err != nil { // Start releases what Prepare took when it fails
		return fmt.Errorf("%s: start replication: %w", db.p.Path(), err)
	}
	db.OnClose(func() {
		if err := r.Close(); err != nil {
			db.log.Warn("stop replication", "path", db.p.Path(), "err", err)
		}
	})
	return nil
}

// ApplyReplicated installs a transaction shipped by the primary, as one
// local commit: after a crash the replica holds it whole or not at all,
// and its LSN (LastLSN) is the applied position. It must be the
// transaction that follows the database's last one (ErrInvalid otherwise;
// nothing is applied).
func (db *DB) ApplyReplicated(tx ReplicatedTx) error {
	w, err := db.p.BeginApply()
	if err != nil {
		return fmt.Errorf("apply LSN %d: %w", tx.LSN, err)
	}
	img := pager.TxImage{LSN: common.LSN(tx.LSN), Time: tx.Time, Pages: make([]pager.PageImage, len(tx.Pages))}
	for i, p := range tx.Pages {
		img.Pages[i] = pager.PageImage{ID: common.PageID(p.ID), Data: p.Data}
	}
	if err := w.Install(img); err != nil {
		w.Rollback()
		return fmt.Errorf("%s: apply: %w", db.p.Path(), err)
	}
	if _, err := w.Commit(); err != nil {
		return fmt.Errorf("%s: apply LSN %d: %w", db.p.Path(), tx.LSN, err)
	}
	db.meta.Store(nil)
	return nil
}

// LastLSN returns the LSN of the last committed transaction (on a
// replica: the last one applied).
func (db *DB) LastLSN() (uint64, error) {
	s, err := db.p.BeginRead()
	if err != nil {
		return 0, err
	}
	defer s.Close()
	m, err := s.Meta()
	if err != nil {
		return 0, err
	}
	return uint64(m.LastLSN), nil
}
