package engine

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sombradb/sombra/engine/internal/btree"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/pager"
)

// DB is a connection to a database file. It is safe for concurrent use:
// any number of read transactions run alongside one write transaction.
type DB struct {
	p       *pager.Pager
	cfg     Config
	log     *slog.Logger
	metrics *metricsState
	sec     dbSec      // access control and audit hooks (engine/access.go)
	policy  dbPolicy   // the access policy stored in the file (engine/policy.go)
	ext     extensions // optional hooks: close hooks, tracer, log tap (engine/hooks.go)
	slow    slowLog    // rate limit of "slow operation" warnings (engine/slowlog.go)

	meta atomic.Pointer[metaMemo] // last decoded header page (readMeta)

	mu     sync.Mutex
	closed bool
}

// Open opens the database at path, creating it if it does not exist.
func Open(path string) (*DB, error) { return OpenWithConfig(path, Config{}) }

// Create creates a new database at path; it fails with ErrExists if the
// file already exists.
func Create(path string) (*DB, error) { return open(path, Config{}, true) }

// OpenWithConfig opens (creating unless cfg.ReadOnly) the database at path.
func OpenWithConfig(path string, cfg Config) (*DB, error) { return open(path, cfg, false) }

func open(path string, cfg Config, exclusive bool) (*DB, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := envCacheSize(); err != nil && cfg.CacheSize == 0 {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg = cfg.withDefaults()
	if cfg.User == "" {
		cfg.User = DefaultUser() // the tools' --user / SOMBRA_USER (engine/policy.go)
	}
	cipher, err := pagerCipher(cfg.Encryption)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if cfg.Replication != nil {
		if err := checkReplicationConfig(cfg); err != nil { // engine/replicate.go
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		// A new or diverged replica gets its file from a snapshot first.
		if err := cfg.Replication.Prepare(path, cfg); err != nil {
			return nil, fmt.Errorf("%s: prepare replication: %w", path, err)
		}
	}
	p, err := pager.Open(path, pager.Options{FS: cfg.FS, ReadOnly: cfg.ReadOnly, PageSize: cfg.PageSize,
		CacheBytes: cfg.CacheSize, BusyTimeout: cfg.BusyTimeout, Create: true, Exclusive: exclusive, Logger: cfg.Logger,
		Cipher: cipher, Fallback: fallbackCipher(), Validate: validatePage})
	if err != nil {
		if cfg.Replication != nil {
			_ = cfg.Replication.Close() // Prepare connected
		}
		return nil, err
	}
	db := &DB{p: p, cfg: cfg, log: cfg.Logger, metrics: newMetrics()}
	// Wrapped so that SetLogTap can tee the engine's logs (engine/hooks.go).
	db.log = db.tappedLogger(cfg.Logger)
	db.installArchiveHook() // WAL archiving before each WAL reset (engine/archive.go)
	stopSampler := make(chan struct{})
	// Rates over a recent window (engine/metrics.go); each tick also
	// publishes this connection's pending counts to the database-wide
	// counters, so a long transaction's work shows up (engine/dbmetrics.go).
	samplerDone := db.metrics.startSampler(stopSampler, db.publishShared)
	db.OnClose(func() { close(stopSampler); <-samplerDone })
	if cfg.WALAutoCheckpoint > 0 && !cfg.ReadOnly {
		threshold := cfg.WALAutoCheckpoint
		p.SetAfterCommit(func(pending int) {
			if pending >= threshold {
				if _, err := p.Checkpoint(pager.Passive); err != nil {
					db.log.Debug("auto-checkpoint", "err", err)
				}
			}
		})
	}
	if err := db.startReplication(); err != nil { // engine/replicate.go
		db.Close()
		return nil, err
	}
	st, _ := p.WAL()
	db.log.Info("database opened", "path", path, "read_only", cfg.ReadOnly, "wal_frames", st.Frames,
		"wal_transactions", st.Commits, "wal_torn_frames", st.Scan.Uncommitted)
	return db, nil
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.p.Path() }

// Config returns the connection's configuration.
func (db *DB) Config() Config { return db.cfg }

// Close closes the connection. A writable connection first runs a passive
// checkpoint so a cleanly closed database leaves little in its WAL.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	db.mu.Unlock()
	db.runCloseHooks() // stops monitors registered with OnClose (engine/hooks.go)
	if !db.cfg.ReadOnly {
		if _, err := db.p.Checkpoint(pager.Passive); err != nil {
			db.log.Debug("checkpoint on close", "err", err)
		}
	}
	db.slow.flush(db.log)
	db.publishShared()
	db.log.Info("database closed", "path", db.p.Path())
	return db.p.Close()
}

// UpdateCacheSize changes the page cache budget at run time. Under access
// control it runs as the connection's user (see Session.UpdateCacheSize).
func (db *DB) UpdateCacheSize(bytes int64) error { return db.updateCacheSize(db.cfg.User, bytes) }

func (db *DB) updateCacheSize(user string, bytes int64) (err error) {
	// Access control + audit hook (engine/access.go): needs Configure.
	done, err := db.secGuard(user, PermissionConfigure, OpConfigure, fmt.Sprintf("cache_size:%d", bytes))
	if err != nil {
		return err
	}
	defer done(&err)
	if bytes <= 0 {
		return fmt.Errorf("cache size %d: %w", bytes, ErrInvalid)
	}
	db.p.ResizeCache(bytes)
	db.mu.Lock()
	db.cfg.CacheSize = bytes
	db.mu.Unlock()
	db.log.Info("cache resized", "bytes", bytes)
	return nil
}

// EnableGroupCommit batches the fsyncs of concurrent commits: a commit
// still returns only once durable, but one fsync serves every commit whose
// frames were written while the fsync before it ran (a committer that finds
// no fsync running starts one at once, so no commit waits for a timer).
// interval and maxTx are kept as the settings (GroupCommit); the batching
// itself needs neither. An interval of 0 turns it off; a positive interval below
// MinGroupCommitInterval is refused with ErrInvalid (it cannot be meant).
// Under access control it runs as the connection's user (see
// Session.EnableGroupCommit).
func (db *DB) EnableGroupCommit(interval time.Duration, maxTx int) error {
	return db.enableGroupCommit(db.cfg.User, interval, maxTx)
}

func (db *DB) enableGroupCommit(user string, interval time.Duration, maxTx int) (err error) {
	// Access control + audit hook (engine/access.go): needs Configure.
	done, err := db.secGuard(user, PermissionConfigure, OpConfigure, fmt.Sprintf("group_commit:%v/%d", interval, maxTx))
	if err != nil {
		return err
	}
	defer done(&err)
	if interval < 0 || maxTx < 0 {
		return fmt.Errorf("group commit interval %v, max %d: %w", interval, maxTx, ErrInvalid)
	}
	if interval > 0 && interval < MinGroupCommitInterval {
		// A time.Duration counts nanoseconds: EnableGroupCommit(5, 50)
		// means 5ns, which batches nothing and was surely meant as 5ms.
		return fmt.Errorf("group commit interval %v is below the minimum %v (a bare number is nanoseconds: write 5*time.Millisecond): %w",
			interval, MinGroupCommitInterval, ErrInvalid)
	}
	db.p.EnableGroupCommit(interval, maxTx)
	db.noteGroupCommit(interval, maxTx) // remembered for GroupCommit() (engine/hooks.go)
	db.log.Info("group commit", "interval", interval, "max_tx", maxTx)
	return nil
}

// MinGroupCommitInterval is the shortest group commit interval
// EnableGroupCommit accepts: shorter ones batch nothing (an fsync takes
// longer) and are a unit mistake.
const MinGroupCommitInterval = 100 * time.Microsecond

// BeginTransaction starts a write transaction. Only one runs at a time
// across all connections; it waits up to Config.BusyTimeout for the lock.
func (db *DB) BeginTransaction() (*Tx, error) {
	if r := db.cfg.Replication; r != nil { // a replica refuses early (engine/replicate.go)
		if err := r.BeforeCommit(); err != nil {
			return nil, fmt.Errorf("begin transaction: %w", err)
		}
	}
	start := time.Now()
	w, err := db.p.BeginWrite()
	if err != nil {
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	if d := time.Since(start); d > db.cfg.SlowOperation {
		db.slow.note(db.log, d, "op", "begin_transaction")
	}
	// The access state: the connection's checker combined with the policy
	// stored in the file (engine/policy.go).
	st, err := db.secFor(w.Meta, w)
	if err != nil {
		w.Rollback()
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	db.log.Debug("transaction begin", "writable", true)
	return &Tx{db: db, w: w, meta: w.Meta, begun: time.Now(), sec: txSec{st: st, user: db.cfg.User}}, nil
}

// BeginReadTransaction starts a read-only snapshot transaction.
func (db *DB) BeginReadTransaction() (*Tx, error) {
	tx := &Tx{db: db}
	s, err := db.p.BeginReadInto(&tx.snapBuf)
	if err != nil {
		return nil, fmt.Errorf("begin read transaction: %w", err)
	}
	m, err := db.readMeta(s)
	if err != nil {
		s.Close()
		return nil, err
	}
	st, err := db.secFor(m, s) // engine/policy.go
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("begin read transaction: %w", err)
	}
	db.metrics.reads.Add(1)
	// begun is only used to report slow commits, so a read transaction
	// does not read the clock.
	tx.snap, tx.meta, tx.sec = s, m, txSec{st: st, user: db.cfg.User}
	return tx, nil
}

// metaMemo is page 0 decoded, with the image it was decoded from.
type metaMemo struct {
	img  *byte // &image[0]: cached page images are immutable
	meta *page.Meta
}

// readMeta decodes the header page the snapshot sees, reusing the last
// decoding when the snapshot gets the very same cached image (the common
// case: page 0 changes only with a commit or a checkpoint). Read
// transactions never modify their meta, so it can be shared.
func (db *DB) readMeta(s *pager.Snapshot) (*page.Meta, error) {
	b, err := s.Page(0)
	if err != nil {
		return nil, err
	}
	if mm := db.meta.Load(); mm != nil && len(b) > 0 && mm.img == &b[0] {
		return mm.meta, nil
	}
	m, err := page.DecodeMeta(b)
	if err != nil {
		return nil, &CorruptionError{Path: db.p.Path(), Page: 0, Offset: 0, Reason: err.Error()}
	}
	db.meta.Store(&metaMemo{img: &b[0], meta: m})
	return m, nil
}

// View runs fn in a read transaction.
func (db *DB) View(fn func(*Tx) error) error {
	tx, err := db.BeginReadTransaction()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

// Update runs fn in a write transaction and commits it if fn returns nil.
func (db *DB) Update(fn func(*Tx) error) error {
	tx, err := db.BeginTransaction()
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// validatePage is the pager's structural check for pages read from disk:
// tree pages must be well-formed before the tree code touches them.
func validatePage(b []byte) error {
	switch page.PageType(b) {
	case page.TypeLeaf, page.TypeBranch:
		return btree.ValidateNode(b)
	}
	return nil
}

// pagerCipher passes the configured cipher to the pager, keeping a nil
// interface nil, and refuses a cipher that says it has no key.
func pagerCipher(c PageCipher) (pager.Cipher, error) {
	if c == nil {
		return nil, nil
	}
	if k, ok := c.(interface{ HasKey() bool }); ok && !k.HasKey() {
		return nil, fmt.Errorf("encryption is configured without a key: %w", ErrEncryption)
	}
	return c, nil
}
