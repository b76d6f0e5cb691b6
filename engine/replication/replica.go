package replication

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sombradb/sombra/engine"
)

// runReplica applies the stream and, for a node that may be primary,
// watches the lease, until the node is promoted or closes.
func (n *Node) runReplica() {
	ctx, cancel := context.WithCancel(n.ctx)
	applyDone := make(chan struct{})
	go func() {
		defer close(applyDone)
		if err := n.applyLoop(ctx); err != nil {
			n.mu.Lock()
			n.applyErr = err
			n.mu.Unlock()
			n.log.Error("replication stopped", "err", err)
		}
	}()
	defer func() {
		cancel()
		<-applyDone
	}()
	period := max(min(n.cfg.LeaseTTL/10, 250*time.Millisecond), 50*time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rev, start, ok := n.tryLease(ctx)
		if !ok {
			continue
		}
		// Stop applying before writing: from here this node appends.
		cancel()
		<-applyDone
		if err := n.promote(n.ctx, rev, start); err != nil {
			n.log.Warn("promotion failed; staying a replica", "err", err)
			dctx, dcancel := context.WithTimeout(n.ctx, 2*time.Second)
			_ = n.kv.Delete(dctx, leaseKey, jetstream.LastRevision(rev))
			dcancel()
		}
		return // run() starts the next role (or this one again)
	}
}

// tryLease takes the lease when this node may be primary, the lease is
// free (or already this node's, after a restart) and the node has applied
// everything in the stream.
func (n *Node) tryLease(ctx context.Context) (rev uint64, start time.Time, ok bool) {
	n.mu.Lock()
	failed := n.applyErr != nil
	n.mu.Unlock()
	lctx, cancel := context.WithTimeout(ctx, n.cfg.LeaseTTL/3)
	defer cancel()
	start = time.Now()
	e, err := n.kv.Get(lctx, leaseKey)
	var holderRev uint64
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return 0, start, false
	default:
		var v leaseValue
		_ = json.Unmarshal(e.Value(), &v)
		n.mu.Lock()
		n.primaryNode, n.primaryAddr = v.Node, v.Addr
		n.mu.Unlock()
		if v.Node != n.cfg.Node {
			return 0, start, false
		}
		holderRev = e.Revision()
	}
	if failed || (n.cfg.Role != Primary && !n.cfg.Failover) {
		return 0, start, false
	}
	info, err := n.stream.Info(lctx)
	if err != nil {
		return 0, start, false
	}
	n.mu.Lock()
	caughtUp := max(n.seen, n.consumed) >= info.State.LastSeq
	n.mu.Unlock()
	if !caughtUp {
		return 0, start, false
	}
	if holderRev != 0 {
		rev, err = n.kv.Update(lctx, leaseKey, n.leaseBytes(), holderRev)
	} else {
		rev, err = n.kv.Create(lctx, leaseKey, n.leaseBytes())
	}
	if err != nil {
		return 0, start, false
	}
	return rev, start, true
}

// applyLoop applies the stream from the message after the last one
// handled. Transactions at or below the applied LSN are skipped; a
// transaction past the next one is a gap, and a message of another
// database is refused: both stop replication with nothing applied.
func (n *Node) applyLoop(ctx context.Context) error {
	n.mu.Lock()
	from := n.consumed + 1
	n.mu.Unlock()
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from}
	cons, err := n.js.OrderedConsumer(ctx, n.cfg.stream(), cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		// JetStream unreachable: try again.
		n.log.Warn("replica consumer", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
		return n.applyLoop(ctx)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("consume %s: %w", n.cfg.stream(), err)
	}
	stop := context.AfterFunc(ctx, msgs.Stop)
	defer stop()
	defer msgs.Stop()
	// The state this replica is in: the stream's transaction at the same
	// LSN must have left the same, or this file went its own way.
	startLSN, startState, err := localDigest(n.db)
	if err != nil {
		return err
	}
	var parts [][]byte
	var cur msgInfo
	for {
		msg, err := msgs.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			n.log.Warn("replica consumer", "err", err)
			continue
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("stream %s: %w", n.cfg.stream(), err)
		}
		seq := md.Sequence.Stream
		mi, err := parseHeader(msg.Headers())
		if err != nil {
			return fmt.Errorf("stream %s message %d: %v: %w", n.cfg.stream(), seq, err, ErrForeignStream)
		}
		if mi.file != n.fileID {
			return fmt.Errorf("stream %s message %d is of database file %016x, this replica's is %016x: %w",
				n.cfg.stream(), seq, mi.file, n.fileID, ErrForeignStream)
		}
		n.mu.Lock()
		applied := n.applied
		n.pending, n.seen = md.NumPending, seq
		if mi.kind == kindPromote {
			n.primaryNode, n.primaryAddr = mi.node, mi.addr
			if len(parts) == 0 {
				n.consumed = seq
			}
		}
		n.mu.Unlock()
		if mi.kind == kindPromote {
			continue
		}
		if mi.lsn == startLSN && mi.part == 1 && mi.state != 0 && mi.state != startState {
			return fmt.Errorf("the stream's LSN %d (message %d) left another state than this file's LSN %d: reopen to restore from the snapshot: %w",
				mi.lsn, seq, startLSN, ErrDiverged)
		}
		if mi.lsn <= applied {
			if mi.part == mi.of {
				n.mu.Lock()
				n.consumed = seq
				n.mu.Unlock()
			}
			continue
		}
		if mi.lsn > applied+1 {
			return fmt.Errorf("stream %s message %d holds LSN %d but the replica is at LSN %d (reopen it to restore from the snapshot if the stream was trimmed): %w",
				n.cfg.stream(), seq, mi.lsn, applied, ErrStreamGap)
		}
		if mi.part == 1 {
			parts, cur = parts[:0], mi
		} else if cur.lsn != mi.lsn || mi.part != len(parts)+1 || mi.sum != cur.sum {
			return fmt.Errorf("stream %s message %d is part %d/%d of LSN %d, expected part %d: %w",
				n.cfg.stream(), seq, mi.part, mi.of, mi.lsn, len(parts)+1, ErrStreamGap)
		}
		parts = append(parts, msg.Data())
		if mi.part < mi.of {
			continue
		}
		pages, err := decodeTx(bytes.Join(parts, nil), mi.sum)
		if err != nil {
			return fmt.Errorf("stream %s LSN %d (message %d): %v: %w", n.cfg.stream(), mi.lsn, seq, err, engine.ErrCorrupt)
		}
		parts = parts[:0]
		if err := n.db.ApplyReplicated(engine.ReplicatedTx{LSN: mi.lsn, Time: mi.time, Pages: pages}); err != nil {
			return err
		}
		n.mu.Lock()
		n.applied, n.consumed, n.lastCommit = mi.lsn, seq, mi.time
		n.lag = time.Since(mi.time)
		n.mu.Unlock()
	}
}
