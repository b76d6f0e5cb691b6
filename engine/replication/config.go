// Package replication replicates a Sombra database over NATS JetStream:
// a primary publishes every committed transaction (its page images, LSN
// and commit time) to a stream, replicas apply the stream in order, a
// lease in a JetStream key-value bucket says who the primary is, and
// snapshots in the JetStream object store seed new replicas. This is the
// model of LiteFS (lease and shipped log) and Litestream (replica from
// object storage), with JetStream as the durable log.
//
// An application turns it on through engine.Config.Replication:
//
//	node, _ := replication.New(replication.Config{URL: "nats://127.0.0.1:4222", Name: "graph", Node: "a", Role: replication.Primary})
//	db, err := engine.OpenWithConfig(path, engine.Config{Replication: node})
//
// Fencing: every publish carries the stream's expected last sequence, so
// only the node that knows the true end of the stream can append; a new
// primary publishes a marker as soon as it holds the lease, which makes
// every later publish of a deposed primary fail.
package replication

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sombradb/sombra/engine"
)

// Mode says when a primary's commit returns.
type Mode int

const (
	// Async: after the local fsync; replicas lag behind.
	Async Mode = iota
	// Sync: after JetStream acknowledged the transaction as well.
	Sync
)

func (m Mode) String() string {
	if m == Sync {
		return "sync"
	}
	return "async"
}

// ParseMode parses "async" or "sync".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "async", "":
		return Async, nil
	case "sync":
		return Sync, nil
	}
	return 0, fmt.Errorf("replication mode %q: want async or sync: %w", s, engine.ErrInvalid)
}

// Role is what a node wants to be when it starts.
type Role int

const (
	// Replica: apply the stream; with Config.Failover, take the lease
	// when it lapses.
	Replica Role = iota
	// Primary: take the lease as soon as it is free and the node has
	// applied everything in the stream.
	Primary
)

// Errors. Writes refused by replication also match engine.ErrNotPrimary.
var (
	// ErrForeignStream: the stream or snapshot belongs to another
	// database file than the local one.
	ErrForeignStream = errors.New("replication stream belongs to another database")
	// ErrStreamGap: the stream lacks a transaction the replica needs.
	ErrStreamGap = errors.New("replication stream has a gap")
	// ErrFenced: another node appended to the stream; this one is no
	// longer the primary.
	ErrFenced = errors.New("fenced: another primary appended to the stream")
	// ErrUnavailable: JetStream did not acknowledge in time (sync mode).
	ErrUnavailable = errors.New("replication unavailable")
	// ErrSnapshot: no usable snapshot (missing, or failed verification).
	ErrSnapshot = errors.New("replication snapshot unusable")
	// ErrDiverged: the local file holds commits the stream does not.
	ErrDiverged = errors.New("local database diverged from the replication stream")
)

// Config configures a node.
type Config struct {
	// URL of the NATS server(s), comma separated (ignored if Conn is set).
	URL string
	// Conn is an existing connection to use (not closed by the node).
	Conn *nats.Conn
	// Name names the replicated database: stream SOMBRA_<Name>, buckets
	// SOMBRA_<Name>_lease and SOMBRA_<Name>_snap. Letters, digits, - and _.
	Name string
	// Node identifies this instance (default host-pid) and must be unique
	// in the set: a node finding the lease under its own name takes it
	// back (a restart). Address is where clients reach it (reported to
	// writers refused by a replica).
	Node    string
	Address string
	Role    Role
	Mode    Mode
	// Failover lets a replica take the lease when it lapses.
	Failover bool
	// LeaseTTL is how long a lease lives without renewal (default 10s).
	LeaseTTL time.Duration
	// SyncTimeout bounds the wait for JetStream's acknowledgement in
	// sync mode (default 5s).
	SyncTimeout time.Duration
	// SnapshotInterval: the primary stores a snapshot this often and
	// trims the stream behind it (default 10 min; negative: only at
	// promotion when none exists, and through Node.Snapshot).
	SnapshotInterval time.Duration
	// StartTimeout bounds how long Open waits for a snapshot (a new
	// replica) and for the lease (Role Primary) (default 30s).
	StartTimeout time.Duration
	// MaxBacklog caps the commits waiting to be published; beyond it
	// writes are refused (default 10000).
	MaxBacklog int
	Logger     *slog.Logger
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (c Config) withDefaults() (Config, error) {
	if !nameRE.MatchString(c.Name) {
		return c, fmt.Errorf("replication name %q: want 1 to 64 letters, digits, - or _: %w", c.Name, engine.ErrInvalid)
	}
	if c.Conn == nil && c.URL == "" {
		return c, fmt.Errorf("replication needs a NATS URL or connection: %w", engine.ErrInvalid)
	}
	if c.Node == "" {
		h, _ := os.Hostname()
		c.Node = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 10 * time.Second
	}
	if c.LeaseTTL < 500*time.Millisecond {
		return c, fmt.Errorf("lease TTL %v: at least 500ms: %w", c.LeaseTTL, engine.ErrInvalid)
	}
	if c.SyncTimeout == 0 {
		c.SyncTimeout = 5 * time.Second
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = 10 * time.Minute
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.MaxBacklog == 0 {
		c.MaxBacklog = 10000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func (c Config) stream() string      { return "SOMBRA_" + c.Name }
func (c Config) subject() string     { return "sombra." + c.Name + ".log" }
func (c Config) leaseBucket() string { return "SOMBRA_" + c.Name + "_lease" }
func (c Config) snapBucket() string  { return "SOMBRA_" + c.Name + "_snap" }

const (
	leaseKey   = "primary"
	snapObject = "snapshot"
)
