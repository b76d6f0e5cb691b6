package engine

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sombradb/sombra/engine/logging"
	"github.com/sombradb/sombra/engine/vfs"
)

// Config tunes a database connection. The zero value of a field means its
// default (see DefaultConfig).
type Config struct {
	// PageSize is used when the file is created (default 4096): a power of
	// two from 1024 to 65536; anything else fails with ErrInvalid before a
	// file is created.
	PageSize int
	// CacheSize is the page cache budget in bytes (default 64 MiB, or
	// the SOMBRA_CACHE_SIZE environment variable, see CacheSizeEnv).
	CacheSize int64
	// BusyTimeout is how long a writer or checkpoint waits for a lock held by
	// another connection before failing with ErrBusy (default 5s).
	BusyTimeout time.Duration
	// WALAutoCheckpoint runs a passive checkpoint after a commit once this
	// many WAL frames are not yet checkpointed (default 1000; negative: never).
	WALAutoCheckpoint int
	// ReadOnly opens without write access; the files are never modified.
	ReadOnly bool
	// SlowOperation is the duration above which operations are logged at
	// warn level (default 100ms).
	SlowOperation time.Duration
	// Logger receives structured logs (default: the logger installed by
	// logging.InitLogging, or discarded when it was not called).
	Logger *slog.Logger
	// FS is the file layer (default: the operating system). Tests inject
	// faults through it.
	FS vfs.FS
	// Encryption, if set, encrypts the database at rest (see PageCipher
	// and package engine/encryption). A new file is created encrypted; an
	// encrypted file opens only with its key and a plaintext file only
	// without one (ErrEncryption otherwise). Nil: no encryption.
	Encryption PageCipher
	// User is the user this connection acts as under access control (the
	// policy stored in the file, DB.SetAccessPolicy, and any checker
	// installed with DB.SetAccessControl): transactions and DB-level
	// operations begun without a user run as it. Default: the process's
	// SetDefaultUser (the tools' --user / SOMBRA_USER), else "". It is a
	// name the program claims, not an authenticated identity.
	User string
	// Replication, if set, makes the connection a member of a replicated
	// set (see package engine/replication): a primary ships every commit,
	// a replica applies them and refuses writes with ErrNotPrimary.
	Replication Replicator
}

// CacheSizeEnv names the environment variable that sets the default page
// cache budget: a byte count with an optional K, M or G suffix (powers of
// 1024), e.g. "32M". It lets an operator bound the memory of the tools
// (backup, verify, compaction, salvage, integrity checks all stream within
// the cache) without a flag on every command. A value that does not parse
// makes Open fail with ErrInvalid rather than silently use the default.
const CacheSizeEnv = "SOMBRA_CACHE_SIZE"

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	c := Config{PageSize: 4096, CacheSize: 64 << 20, BusyTimeout: 5 * time.Second,
		WALAutoCheckpoint: 1000, SlowOperation: 100 * time.Millisecond}
	if n, err := envCacheSize(); err == nil && n > 0 {
		c.CacheSize = n
	}
	return c
}

// envCacheSize parses CacheSizeEnv; 0 when it is unset.
func envCacheSize() (int64, error) {
	s := strings.TrimSpace(os.Getenv(CacheSizeEnv))
	if s == "" {
		return 0, nil
	}
	n, err := ParseCacheSize(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", CacheSizeEnv, err)
	}
	return n, nil
}

// ParseCacheSize parses a cache size as SOMBRA_CACHE_SIZE takes it: a
// positive byte count with an optional K, M or G suffix (powers of 1024).
func ParseCacheSize(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty cache size: %w", ErrInvalid)
	}
	mult := int64(1)
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	}
	digits := s
	if mult > 1 {
		digits = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q: want a positive byte count with an optional K, M or G suffix: %w", s, ErrInvalid)
	}
	return n * mult, nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.PageSize == 0 {
		c.PageSize = d.PageSize
	}
	if c.CacheSize == 0 {
		c.CacheSize = d.CacheSize
	}
	if c.BusyTimeout == 0 {
		c.BusyTimeout = d.BusyTimeout
	}
	if c.WALAutoCheckpoint == 0 {
		c.WALAutoCheckpoint = d.WALAutoCheckpoint
	}
	if c.SlowOperation == 0 {
		c.SlowOperation = d.SlowOperation
	}
	if c.Logger == nil {
		c.Logger = logging.Default()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.FS == nil {
		c.FS = vfs.OS
	}
	return c
}

// validate rejects settings that cannot work before anything is created:
// a file created with an impossible page size would be refused by every
// later open as corrupt.
func (c Config) validate() error {
	if ps := c.PageSize; ps != 0 && (ps < 1024 || ps > 65536 || ps&(ps-1) != 0) {
		return fmt.Errorf("page size %d (Config.PageSize): must be a power of two from 1024 to 65536: %w", ps, ErrInvalid)
	}
	return nil
}
