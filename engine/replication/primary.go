package replication

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sombradb/sombra/engine/vfs"
)

// runPrimary publishes, renews the lease and takes snapshots until the
// node steps down or closes.
func (n *Node) runPrimary() {
	ctx, cancel := context.WithCancel(n.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		n.mu.Lock()
		n.cond.Broadcast()
		n.mu.Unlock()
	})
	defer stop()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); n.publishLoop(ctx); cancel() }()
	go func() { defer wg.Done(); n.leaseLoop(ctx); cancel() }()
	go func() { defer wg.Done(); n.snapshotLoop(ctx) }()
	wg.Wait()
}

// publishLoop publishes the queue in order. Failures other than fencing
// are retried (JetStream down): in async mode commits go on meanwhile,
// in sync mode BeforeCommit refuses new ones.
func (n *Node) publishLoop(ctx context.Context) {
	for {
		n.mu.Lock()
		for ctx.Err() == nil && (len(n.queue) == 0 || !n.queue[0].ready) {
			n.cond.Wait()
		}
		if ctx.Err() != nil {
			n.mu.Unlock()
			return
		}
		it := n.queue[0]
		n.mu.Unlock()
		if it.dropped {
			n.popAcked(it, nil)
			continue
		}
		err := n.publishItem(ctx, it)
		if err == nil {
			n.popAcked(it, nil)
			continue
		}
		if errors.Is(err, ErrFenced) {
			n.stepDown(err)
			return
		}
		n.mu.Lock()
		n.pubErr = err
		n.mu.Unlock()
		n.log.Warn("publish failed; retrying", "lsn", it.lsn, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (n *Node) popAcked(it *item, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.queue) == 0 || n.queue[0] != it {
		return // stepped down meanwhile: stepDown settled every item
	}
	n.queue = n.queue[1:]
	if err == nil && !it.dropped {
		n.pubErr = nil
		n.applied, n.lastCommit = it.lsn, it.time
	}
	it.err = err
	close(it.acked)
}

func (n *Node) msgID(lsn uint64, part int) string {
	return fmt.Sprintf("%s-%d-%d-%d", hex64(n.fileID), lsn, part, n.term)
}

// publishItem appends the item's remaining parts, each fenced by the
// stream's expected last sequence.
func (n *Node) publishItem(ctx context.Context, it *item) error {
	for it.next < len(it.parts) {
		i := it.next
		h := nats.Header{}
		h.Set(hKind, kindTx)
		h.Set(hFile, hex64(n.fileID))
		h.Set(hLSN, strconv.FormatUint(it.lsn, 10))
		h.Set(hTime, strconv.FormatInt(it.time.UnixNano(), 10))
		h.Set(hPart, fmt.Sprintf("%d/%d", i+1, len(it.parts)))
		h.Set(hSum, fmt.Sprintf("%08x", it.sum))
		h.Set(hState, fmt.Sprintf("%08x", it.state))
		h.Set(hNode, n.cfg.Node)
		h.Set(hAddr, n.cfg.Address)
		seq, err := n.appendFenced(ctx, &nats.Msg{Subject: n.cfg.subject(), Header: h, Data: it.parts[i]}, n.msgID(it.lsn, i))
		if err != nil {
			return fmt.Errorf("publish LSN %d part %d/%d: %w", it.lsn, i+1, len(it.parts), err)
		}
		n.mu.Lock()
		n.lastSeq = seq
		n.mu.Unlock()
		it.next++
	}
	return nil
}

// appendFenced publishes msg expecting the stream to end at lastSeq. A
// mismatch is fencing, unless the stream's last message is this very
// one (an earlier attempt landed but its acknowledgement was lost).
func (n *Node) appendFenced(ctx context.Context, msg *nats.Msg, id string) (uint64, error) {
	n.mu.Lock()
	expect := n.lastSeq
	n.mu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, n.cfg.SyncTimeout)
	defer cancel()
	ack, err := n.js.PublishMsg(pctx, msg, jetstream.WithExpectLastSequence(expect), jetstream.WithMsgID(id))
	if err == nil {
		return ack.Sequence, nil // a duplicate's is the original's
	}
	if !isWrongLastSeq(err) {
		return 0, err
	}
	last, gerr := n.stream.GetLastMsgForSubject(pctx, n.cfg.subject())
	if gerr == nil && last.Header.Get(jetstream.MsgIDHeader) == id {
		return last.Sequence, nil
	}
	return 0, fmt.Errorf("the stream no longer ends at sequence %d: %w", expect, ErrFenced)
}

// leaseLoop renews the lease every third of its TTL. A lease found
// expired is taken again if nobody else took it; a lease held by another
// node means this one was deposed.
func (n *Node) leaseLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n.mu.Lock()
		rev := n.leaseRev
		n.mu.Unlock()
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, n.cfg.LeaseTTL/3)
		nrev, err := n.kv.Update(rctx, leaseKey, n.leaseBytes(), rev)
		if err != nil && isWrongLastSeq(err) {
			// Expired while JetStream was out of reach, or taken. Taking it
			// again is safe: publishes stay fenced by the stream's sequence.
			nrev, err = n.kv.Create(rctx, leaseKey, n.leaseBytes())
			if err != nil && (errors.Is(err, jetstream.ErrKeyExists) || isWrongLastSeq(err)) {
				cancel()
				n.stepDown(fmt.Errorf("lease taken by another node: %w", ErrFenced))
				return
			}
		}
		cancel()
		if err != nil {
			n.log.Warn("renew lease", "err", err)
			continue
		}
		n.mu.Lock()
		n.leaseRev, n.leaseUntil = nrev, start.Add(n.cfg.LeaseTTL*4/5)
		n.mu.Unlock()
	}
}

// stepDown turns a deposed primary into a replica, or, when it holds
// commits that never reached the stream, into a diverged node that must
// be reopened (Prepare then restores a snapshot).
func (n *Node) stepDown(why error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.role != rolePrimary {
		return
	}
	lost := 0
	for _, it := range n.queue {
		if !it.dropped {
			lost++
		}
		it.err = why
		close(it.acked)
	}
	n.queue = nil
	n.leaseUntil = time.Time{}
	n.pubErr = nil
	if lost > 0 {
		n.markDivergedLocked(lost, why)
	} else {
		n.role = roleReplica
	}
	n.log.Warn("stepped down", "why", why, "role", n.role)
	n.cond.Broadcast()
}

const divergedSuffix = "-replica-diverged"

// markDivergedLocked records that lost local commits never reached the
// stream: the node stops, and the next open restores from the snapshot
// (the marker file says so even if the state digest could not).
func (n *Node) markDivergedLocked(lost int, why error) {
	n.role = roleDiverged
	n.applyErr = fmt.Errorf("%d local commits were not replicated: %w", lost, ErrDiverged)
	if err := vfs.WriteFileAtomic(n.fs, n.path+divergedSuffix, []byte(why.Error()+"\n"), 0o644); err != nil {
		n.log.Error("record divergence", "err", err)
	}
}

// promote makes this replica the primary: it holds the lease (revision
// rev), has applied everything in the stream and stopped applying. The
// marker it appends moves the stream's end, so a deposed primary's next
// publish fails.
func (n *Node) promote(ctx context.Context, rev uint64, start time.Time) error {
	info, err := n.stream.Info(ctx)
	if err != nil {
		return err
	}
	n.mu.Lock()
	consumed := max(n.seen, n.consumed)
	n.mu.Unlock()
	if info.State.LastSeq > consumed {
		return fmt.Errorf("the stream grew to %d while taking the lease (applied through %d)", info.State.LastSeq, consumed)
	}
	n.mu.Lock()
	n.lastSeq, n.leaseRev, n.term = info.State.LastSeq, rev, rev
	n.mu.Unlock()
	h := nats.Header{}
	h.Set(hKind, kindPromote)
	h.Set(hFile, hex64(n.fileID))
	h.Set(hNode, n.cfg.Node)
	h.Set(hAddr, n.cfg.Address)
	seq, err := n.appendFenced(ctx, &nats.Msg{Subject: n.cfg.subject(), Header: h}, fmt.Sprintf("%s-promote-%d", hex64(n.fileID), rev))
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.lastSeq, n.consumed = seq, seq
	n.role, n.primaryNode, n.primaryAddr = rolePrimary, n.cfg.Node, n.cfg.Address
	n.leaseUntil = start.Add(n.cfg.LeaseTTL * 4 / 5)
	n.applyErr, n.lag, n.pending = nil, 0, 0
	n.mu.Unlock()
	n.log.Info("promoted to primary", "lsn", n.Status().AppliedLSN, "stream_seq", seq)
	return nil
}
