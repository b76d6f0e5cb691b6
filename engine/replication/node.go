package replication

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/handle"
	"github.com/sombradb/sombra/engine/vfs"
)

// Node is one member of a replicated set: pass it as
// engine.Config.Replication. A Node serves one connection, once.
type Node struct {
	cfg     Config
	log     *slog.Logger
	nc      *nats.Conn
	ownConn bool
	js      jetstream.JetStream
	stream  jetstream.Stream
	kv      jetstream.KeyValue
	obs     jetstream.ObjectStore
	maxPart int

	path   string
	fs     vfs.FS // the database's (engine.Config.FS)
	db     *engine.DB
	fileID uint64

	ctx        context.Context
	cancel     context.CancelFunc
	done       chan struct{}
	statusDone chan struct{} // statusfile.go's loop ended (file removed)

	mu          sync.Mutex
	cond        *sync.Cond // queue and role changes
	role        string     // "replica", "primary" or "diverged"
	primaryNode string
	primaryAddr string
	leaseRev    uint64
	leaseUntil  time.Time
	lastSeq     uint64  // primary: the stream's last sequence as this node appended it
	term        uint64  // primary: the lease revision it was promoted with (in message ids)
	queue       []*item // primary: committed, not yet acknowledged
	pubErr      error   // primary: the last publish failure, nil once one succeeded
	applied     uint64  // last LSN applied (replica) or committed and published (primary)
	consumed    uint64  // replica: stream sequence of the last message handled (a whole transaction's, or a marker)
	seen        uint64  // replica: stream sequence of the last message received (a torn tail's parts included)
	lastCommit  time.Time
	lag         time.Duration
	pending     uint64
	applyErr    error // replica: why applying stopped
}

// item is one committed transaction waiting to be published.
type item struct {
	lsn     uint64
	time    time.Time
	parts   [][]byte
	sum     uint32
	state   uint32 // digest.go
	next    int    // next part to publish
	ready   bool   // the local fsync returned
	dropped bool   // the local fsync failed: not a commit
	acked   chan struct{}
	err     error // set before acked is closed
	queued  time.Time
}

const (
	roleReplica  = "replica"
	rolePrimary  = "primary"
	roleDiverged = "diverged"
)

// New returns a node for cfg; nothing is connected until the engine
// opens the database with it.
func New(cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.Node), role: roleReplica, done: make(chan struct{})}
	n.cond = sync.NewCond(&n.mu)
	return n, nil
}

// connect joins NATS and makes sure the stream and buckets exist.
func (n *Node) connect(ctx context.Context) error {
	if n.cfg.Conn != nil {
		n.nc = n.cfg.Conn
	} else {
		nc, err := nats.Connect(n.cfg.URL, nats.Name("sombra-"+n.cfg.Node), nats.MaxReconnects(-1),
			nats.ReconnectWait(100*time.Millisecond), nats.RetryOnFailedConnect(false))
		if err != nil {
			return fmt.Errorf("connect to NATS %s: %w: %w", n.cfg.URL, err, ErrUnavailable)
		}
		n.nc, n.ownConn = nc, true
	}
	// Room for the headers under the server's payload limit.
	n.maxPart = int(n.nc.MaxPayload()) - 4096
	if n.maxPart < 4096 {
		n.maxPart = 4096
	}
	js, err := jetstream.New(n.nc)
	if err != nil {
		return fmt.Errorf("JetStream: %w", err)
	}
	n.js = js
	n.stream, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: n.cfg.stream(), Subjects: []string{n.cfg.subject()},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute, Description: "Sombra replication log"})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", n.cfg.stream(), err)
	}
	// The bucket's TTL is the lease's: every node of a set must agree on
	// it, or one would reset the TTL the others time their lease by.
	if kv, err := js.KeyValue(ctx, n.cfg.leaseBucket()); err == nil {
		st, err := kv.Status(ctx)
		if err != nil {
			return fmt.Errorf("lease bucket %s: %w", n.cfg.leaseBucket(), err)
		}
		if st.TTL() != n.cfg.LeaseTTL {
			return fmt.Errorf("lease TTL %v differs from the %v of the set's bucket %s: %w", n.cfg.LeaseTTL, st.TTL(), n.cfg.leaseBucket(), engine.ErrInvalid)
		}
	}
	n.kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: n.cfg.leaseBucket(), TTL: n.cfg.LeaseTTL,
		History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		return fmt.Errorf("create lease bucket %s: %w", n.cfg.leaseBucket(), err)
	}
	n.obs, err = js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: n.cfg.snapBucket(), Storage: jetstream.FileStorage})
	if err != nil {
		return fmt.Errorf("create snapshot bucket %s: %w", n.cfg.snapBucket(), err)
	}
	return nil
}

func (n *Node) closeConn() {
	if n.ownConn && n.nc != nil {
		n.nc.Close()
	}
}

// Prepare implements engine.Replicator: it connects, and restores the
// latest snapshot into path when the file is missing, far behind the
// stream, or diverged from it. A file of another database is refused.
func (n *Node) Prepare(path string, ecfg engine.Config) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.StartTimeout)
	defer cancel()
	n.path, n.fs = path, ecfg.FS
	if n.fs == nil {
		n.fs = vfs.OS
	}
	if err := n.connect(ctx); err != nil {
		n.closeConn()
		return err
	}
	defer func() {
		if err != nil {
			n.closeConn()
		}
	}()
	return n.prepareFile(ctx)
}

// Start implements engine.Replicator: replication runs from here on. A
// node with Role Primary waits (up to StartTimeout) for the lease unless
// another live node holds it.
func (n *Node) Start(db *engine.DB) error {
	n.db = db
	n.fileID = handle.Pager(db).FileID()
	lsn, err := db.LastLSN()
	if err != nil {
		n.closeConn()
		return err
	}
	n.applied = lsn
	n.ctx, n.cancel = context.WithCancel(context.Background())
	go n.run()
	n.statusDone = make(chan struct{})
	go func() { defer close(n.statusDone); n.statusFileLoop() }()
	if n.cfg.Role != Primary {
		return nil
	}
	deadline := time.Now().Add(n.cfg.StartTimeout)
	for time.Now().Before(deadline) {
		st := n.Status()
		if st.Role == rolePrimary {
			return nil
		}
		if st.Err != "" {
			break
		}
		if st.PrimaryNode != "" && st.PrimaryNode != n.cfg.Node {
			n.log.Info("another node holds the lease: starting as a replica", "primary", st.PrimaryNode)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := n.Status()
	n.log.Warn("could not become primary: running as a replica", "err", st.Err)
	return nil
}

// run switches between the roles until Close.
func (n *Node) run() {
	defer close(n.done)
	for n.ctx.Err() == nil {
		n.mu.Lock()
		role := n.role
		n.mu.Unlock()
		switch role {
		case rolePrimary:
			n.runPrimary()
		case roleReplica:
			n.runReplica()
		default: // diverged: nothing to do until reopened
			<-n.ctx.Done()
		}
	}
}

// BeforeCommit implements engine.Replicator.
func (n *Node) BeforeCommit() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.role == roleDiverged:
		return fmt.Errorf("%s holds commits the stream does not (deposed primary): reopen it to resynchronise: %w: %w", n.cfg.Node, ErrDiverged, engine.ErrNotPrimary)
	case n.role != rolePrimary:
		return fmt.Errorf("%s is a replica; the primary is %s: %w", n.cfg.Node, n.primaryDesc(), engine.ErrNotPrimary)
	case time.Now().After(n.leaseUntil):
		return fmt.Errorf("%s: the primary lease lapsed (not renewed since %s): %w", n.cfg.Node,
			n.leaseUntil.Add(-n.cfg.LeaseTTL*4/5).Format(time.RFC3339Nano), engine.ErrNotPrimary)
	case n.cfg.Mode == Sync && !n.nc.IsConnected():
		return fmt.Errorf("not connected to NATS (%s): %w", n.nc.Status(), ErrUnavailable)
	case n.cfg.Mode == Sync && len(n.queue) > 0 && (n.pubErr != nil || time.Since(n.queue[0].queued) > n.cfg.SyncTimeout):
		return fmt.Errorf("%d committed transactions are not yet acknowledged by JetStream%s: %w", len(n.queue), errSuffix(n.pubErr), ErrUnavailable)
	case len(n.queue) >= n.cfg.MaxBacklog:
		return fmt.Errorf("%d committed transactions wait to be published%s: %w", len(n.queue), errSuffix(n.pubErr), ErrUnavailable)
	}
	return nil
}

func (n *Node) primaryDesc() string {
	return Status{PrimaryAddr: n.primaryAddr, PrimaryNode: n.primaryNode}.Primary()
}

// Primary names the primary: its address, else its node name, else
// "unknown".
func (s Status) Primary() string {
	switch {
	case s.PrimaryAddr != "":
		return s.PrimaryAddr
	case s.PrimaryNode != "":
		return s.PrimaryNode
	}
	return "unknown"
}

// Committed implements engine.Replicator: the transaction joins the
// publish queue (in LSN order: the engine holds its writer lock).
func (n *Node) Committed(tx engine.ReplicatedTx) func(error) error {
	parts, sum := encodeTx(tx, n.maxPart)
	state, err := txDigest(tx)
	if err != nil {
		n.log.Error("state digest", "lsn", tx.LSN, "err", err)
	}
	it := &item{lsn: tx.LSN, time: tx.Time, parts: parts, sum: sum, state: state, acked: make(chan struct{}), queued: time.Now()}
	n.mu.Lock()
	if n.role != rolePrimary {
		// Stepped down between BeforeCommit and here: this commit is
		// local only.
		it.err = fmt.Errorf("%s stepped down during the commit: %w", n.cfg.Node, ErrFenced)
		close(it.acked)
		if n.role == roleReplica {
			n.markDivergedLocked(1, it.err)
		}
		n.mu.Unlock()
		return func(error) error {
			return fmt.Errorf("LSN %d is committed locally but was not replicated: %w", tx.LSN, it.err)
		}
	}
	n.queue = append(n.queue, it)
	n.mu.Unlock()
	return func(syncErr error) error {
		n.mu.Lock()
		it.ready, it.dropped = true, syncErr != nil
		n.cond.Broadcast()
		n.mu.Unlock()
		if syncErr != nil || n.cfg.Mode == Async {
			return nil
		}
		t := time.NewTimer(n.cfg.SyncTimeout)
		defer t.Stop()
		select {
		case <-it.acked:
			if it.err != nil {
				return fmt.Errorf("LSN %d is committed locally but was not replicated: %w", tx.LSN, it.err)
			}
			return nil
		case <-t.C:
			n.mu.Lock()
			perr := n.pubErr
			n.mu.Unlock()
			return fmt.Errorf("LSN %d is committed locally but JetStream did not acknowledge it within %v%s; it is published when JetStream is back: %w",
				tx.LSN, n.cfg.SyncTimeout, errSuffix(perr), ErrUnavailable)
		}
	}
}

// Close implements engine.Replicator: a primary publishes what it still
// holds (up to SyncTimeout) and hands its lease back, so that a replica
// takes over at once.
func (n *Node) Close() error {
	if n.cancel == nil {
		n.closeConn()
		return nil
	}
	deadline := time.Now().Add(n.cfg.SyncTimeout)
	for time.Now().Before(deadline) {
		n.mu.Lock()
		left := len(n.queue)
		n.mu.Unlock()
		if left == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	n.cancel()
	n.mu.Lock()
	n.cond.Broadcast()
	n.mu.Unlock()
	<-n.done
	<-n.statusDone
	n.mu.Lock()
	primary, rev, left := n.role == rolePrimary, n.leaseRev, len(n.queue)
	n.mu.Unlock()
	if primary && left == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := n.kv.Delete(ctx, leaseKey, jetstream.LastRevision(rev)); err != nil {
			n.log.Warn("hand back the lease", "err", err)
		}
		cancel()
	}
	n.closeConn()
	if left > 0 {
		return fmt.Errorf("%d committed transactions were not published: %w", left, ErrUnavailable)
	}
	return nil
}

// Status is a node's replication state.
type Status struct {
	Node        string        `json:"node"`
	Role        string        `json:"role"` // primary, replica, or diverged
	Mode        string        `json:"mode"`
	PrimaryNode string        `json:"primary_node,omitempty"`
	PrimaryAddr string        `json:"primary_addr,omitempty"`
	AppliedLSN  uint64        `json:"applied_lsn"` // replica: applied; primary: committed and published
	StreamSeq   uint64        `json:"stream_seq"`  // last stream message handled or appended
	Pending     uint64        `json:"pending"`     // replica: messages delivered after the last applied one; primary: unpublished commits
	Lag         time.Duration `json:"lag_ns"`      // replica: commit-to-apply delay of the last applied transaction; while messages are pending, at least the age of that commit
	LastCommit  time.Time     `json:"last_commit"`
	Err         string        `json:"error,omitempty"`
	// Disconnected: the node has lost its NATS connection, so a
	// replica's lag says nothing about what it is missing.
	Disconnected bool `json:"disconnected,omitempty"`
}

// Status reports the node's state.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := Status{Node: n.cfg.Node, Role: n.role, Mode: n.cfg.Mode.String(), PrimaryNode: n.primaryNode, PrimaryAddr: n.primaryAddr,
		AppliedLSN: n.applied, LastCommit: n.lastCommit}
	st.Disconnected = n.nc != nil && !n.nc.IsConnected()
	if n.role == rolePrimary {
		st.StreamSeq, st.Pending = n.lastSeq, uint64(len(n.queue))
		st.PrimaryNode, st.PrimaryAddr = n.cfg.Node, n.cfg.Address
		if n.pubErr != nil {
			st.Err = n.pubErr.Error()
		}
	} else {
		st.StreamSeq, st.Pending, st.Lag = n.consumed, n.pending, n.lag
		if n.pending > 0 && !n.lastCommit.IsZero() {
			// Behind: an upper bound, the age of the last applied commit.
			st.Lag = max(st.Lag, time.Since(n.lastCommit))
		}
		if n.applyErr != nil {
			st.Err = n.applyErr.Error()
		}
	}
	return st
}

// WaitApplied waits until the node has applied (or, as primary,
// published) LSN lsn: read-your-writes on a replica.
func (n *Node) WaitApplied(ctx context.Context, lsn uint64) error {
	for {
		n.mu.Lock()
		a, aerr := n.applied, n.applyErr
		n.mu.Unlock()
		if a >= lsn {
			return nil
		}
		if aerr != nil {
			return aerr
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for LSN %d (applied %d): %w", lsn, a, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// leaseValue is what the lease key holds.
type leaseValue struct {
	Node string `json:"node"`
	Addr string `json:"addr,omitempty"`
}

func (n *Node) leaseBytes() []byte {
	b, _ := json.Marshal(leaseValue{Node: n.cfg.Node, Addr: n.cfg.Address})
	return b
}

// isWrongLastSeq reports a failed compare-and-set on a stream.
func isWrongLastSeq(err error) bool {
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}

func (n *Node) exists(path string) bool {
	_, err := n.fs.Stat(path)
	return err == nil
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}
