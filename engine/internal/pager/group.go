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
	quit     chan struct{}
	done     chan struct{}
	kick     chan struct{}
}

// EnableGroupCommit turns group commit on (interval > 0) or off.
func (p *Pager) EnableGroupCommit(interval time.Duration, maxTx int) {
	if p.group != nil {
		p.group.stop()
		p.group = nil
	}
	if interval <= 0 {
		return
	}
	if maxTx < 1 {
		maxTx = 1
	}
	g := &groupCommit{p: p, interval: interval, maxTx: maxTx, quit: make(chan struct{}), done: make(chan struct{}), kick: make(chan struct{}, 1)}
	g.cond = sync.NewCond(&g.mu)
	p.group = g
	go g.loop()
}

func (g *groupCommit) wait(end int64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
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
	for g.synced < end && g.err == nil {
		g.cond.Wait()
	}
	g.waiting--
	return g.err
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
}
