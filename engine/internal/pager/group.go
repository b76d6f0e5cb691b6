package pager

import (
	"sync"
	"time"
)

// groupCommit batches the WAL fsyncs of concurrent committers: each commit
// writes its frames, releases the writer lock and waits here; one fsync every
// interval (or as soon as maxTx commits wait) makes all of them durable.
type groupCommit struct {
	p        *Pager
	interval time.Duration
	maxTx    int
	mu       sync.Mutex
	cond     *sync.Cond
	waiting  int
	wantEnd  int64
	synced   int64
	err      error
	stopped  bool // the syncer has exited: waiters must fsync themselves
	quit     chan struct{}
	done     chan struct{}
	kick     chan struct{}
}

// EnableGroupCommit turns group commit on (interval > 0) or off.
func (p *Pager) EnableGroupCommit(interval time.Duration, maxTx int) {
	p.groupMu.Lock()
	defer p.groupMu.Unlock()
	if old := p.group.Swap(nil); old != nil {
		old.stop() // flushes its waiters; late arrivals sync themselves
	}
	if interval <= 0 {
		return
	}
	if maxTx < 1 {
		maxTx = 1
	}
	g := &groupCommit{p: p, interval: interval, maxTx: maxTx, quit: make(chan struct{}), done: make(chan struct{}), kick: make(chan struct{}, 1)}
	g.cond = sync.NewCond(&g.mu)
	p.group.Store(g)
	go g.loop()
}

func (g *groupCommit) wait(end int64) error {
	g.mu.Lock()
	if g.stopped {
		// Group commit was turned off after this commit picked the syncer.
		g.mu.Unlock()
		return g.p.fsyncWAL()
	}
	if end > g.wantEnd {
		g.wantEnd = end
	}
	g.waiting++
	if g.waiting >= g.maxTx {
		select {
		case g.kick <- struct{}{}:
		default:
		}
	}
	for g.synced < end && g.err == nil && !g.stopped {
		g.cond.Wait()
	}
	g.waiting--
	err, synced := g.err, g.synced >= end
	g.mu.Unlock()
	if err == nil && !synced {
		return g.p.fsyncWAL() // stopped before reaching our frames
	}
	return err
}

func (g *groupCommit) loop() {
	defer close(g.done)
	t := time.NewTicker(g.interval)
	defer t.Stop()
	for {
		select {
		case <-g.quit:
			g.flush()
			return
		case <-t.C:
		case <-g.kick:
		}
		g.flush()
	}
}

func (g *groupCommit) flush() {
	g.mu.Lock()
	target := g.wantEnd
	if target <= g.synced {
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	err := g.p.fsyncWAL()
	g.mu.Lock()
	if err != nil {
		g.err = err
	} else {
		g.synced = target
	}
	g.cond.Broadcast()
	g.mu.Unlock()
}

func (g *groupCommit) stop() {
	close(g.quit)
	<-g.done
	g.mu.Lock()
	g.stopped = true
	g.cond.Broadcast()
	g.mu.Unlock()
}
