package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// LoadBalancer routes reads to healthy replicas, least lagging first, and
// writes to the current primary, which it finds again after a failover:
// the operations guide's cluster::LoadBalancer (LoadBalancer::new is
// NewLoadBalancer, get_read_connection GetReadConnection,
// get_write_connection GetWriteConnection, health_check_all
// HealthCheckAll).
type LoadBalancer struct {
	opts      options
	clientOpt []Option

	mu        sync.Mutex
	instances []*Client // one per address given
	primary   *Client   // last primary found (may be outside instances)
}

// Health is one instance's state as HealthCheckAll saw it.
type Health struct {
	Addr        string        `json:"addr"`
	Role        string        `json:"role"` // primary, replica, standalone, diverged; "" if unreachable
	Healthy     bool          `json:"healthy"`
	Ready       bool          `json:"ready"`
	AppliedLSN  uint64        `json:"applied_lsn"`
	Lag         time.Duration `json:"lag_ns"`
	Latency     time.Duration `json:"latency_ns"` // round trip of the status request
	PrimaryAddr string        `json:"primary_addr,omitempty"`
	Err         error         `json:"-"`
	Error       string        `json:"error,omitempty"`
}

// NewLoadBalancer returns a load balancer over the instances at addrs
// ("host:port" or URLs). Nothing is contacted until it is used.
func NewLoadBalancer(addrs []string, opts ...Option) (*LoadBalancer, error) {
	if len(addrs) == 0 {
		return nil, fmt.Errorf("load balancer needs at least one address: %w", ErrInvalid)
	}
	o := defaultOptions()
	for _, f := range opts {
		f(&o)
	}
	lb := &LoadBalancer{opts: o, clientOpt: opts}
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[normalize(a)] {
			return nil, fmt.Errorf("address %s given twice: %w", a, ErrInvalid)
		}
		seen[normalize(a)] = true
		lb.instances = append(lb.instances, NewClient(a, opts...))
	}
	return lb, nil
}

// New is NewLoadBalancer under the guide's name (LoadBalancer::new).
func New(addrs []string, opts ...Option) (*LoadBalancer, error) {
	return NewLoadBalancer(addrs, opts...)
}

// HealthCheckAll asks every instance for its status, in parallel, and
// reports role, health, lag and latency for each, in the order the
// addresses were given. It fails (ErrNoInstance) only when none answered.
func (lb *LoadBalancer) HealthCheckAll(ctx context.Context) ([]Health, error) {
	lb.mu.Lock()
	clients := slices.Clone(lb.instances)
	lb.mu.Unlock()
	out := make([]Health, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() { out[i] = lb.check(ctx, c) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return out, ctx.Err()
	}
	for _, h := range out {
		if h.Err == nil {
			return out, nil
		}
	}
	return out, fmt.Errorf("none of %d instances answered (first: %w): %w", len(out), out[0].Err, ErrNoInstance)
}

func (lb *LoadBalancer) check(ctx context.Context, c *Client) Health {
	ctx, cancel := context.WithTimeout(ctx, lb.opts.checkTimeout)
	defer cancel()
	start := time.Now()
	st, err := c.Status(ctx)
	h := Health{Addr: c.Addr(), Latency: time.Since(start), Err: err}
	if err != nil {
		h.Error = err.Error()
		return h
	}
	h.Role, h.Ready, h.AppliedLSN, h.PrimaryAddr = st.Role, st.Ready, st.AppliedLSN, st.PrimaryAddr
	h.Lag = time.Duration(st.LagSeconds * float64(time.Second))
	h.Healthy = st.Ready && st.Role != RoleDiverged && (st.Role != RoleReplica || h.Lag <= lb.opts.maxLag)
	if st.Error != "" {
		h.Error = st.Error
	}
	return h
}

// ReadOption tunes GetReadConnection.
type ReadOption func(*readOptions)

type readOptions struct{ minLSN uint64 }

// MinLSN asks for an instance that has applied lsn (a write's commit
// LSN): read your writes. GetReadConnection waits up to the read wait
// (WithReadWait) for a replica to apply it, then falls back to the
// primary; the returned client's reads also wait on the server side.
func MinLSN(lsn uint64) ReadOption { return func(o *readOptions) { o.minLSN = lsn } }

// GetReadConnection returns a client of a healthy replica, the least
// lagging first (then the fastest to answer); with none, the primary.
func (lb *LoadBalancer) GetReadConnection(ctx context.Context, opts ...ReadOption) (*Client, error) {
	var ro readOptions
	for _, f := range opts {
		f(&ro)
	}
	deadline := time.Now().Add(lb.opts.readWait)
	for {
		hs, err := lb.HealthCheckAll(ctx)
		if err != nil && ctx.Err() != nil {
			return nil, err
		}
		var best *Health
		for i := range hs {
			h := &hs[i]
			if !h.Healthy || h.Role != RoleReplica || h.AppliedLSN < ro.minLSN {
				continue
			}
			if best == nil || h.Lag < best.Lag || (h.Lag == best.Lag && h.Latency < best.Latency) {
				best = h
			}
		}
		if best != nil {
			return lb.clientFor(best.Addr).AtLeast(ro.minLSN), nil
		}
		if ro.minLSN == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	p, err := lb.GetWriteConnection(ctx)
	if err != nil {
		return nil, fmt.Errorf("no healthy replica, and no primary: %w", err)
	}
	return p.AtLeast(ro.minLSN), nil
}

// GetWriteConnection returns a client of the current primary. It asks
// the instances who is primary (an instance that is one, else the
// primary a replica names), waiting through a failover up to the write
// wait (WithWriteWait) or the context's end. The client follows a
// not-primary answer to the primary it names.
func (lb *LoadBalancer) GetWriteConnection(ctx context.Context) (*Client, error) {
	lb.mu.Lock()
	cached := lb.primary
	lb.mu.Unlock()
	if cached != nil {
		cctx, cancel := context.WithTimeout(ctx, lb.opts.checkTimeout)
		st, err := cached.Status(cctx)
		cancel()
		if err == nil && st.Writable() {
			return cached, nil
		}
	}
	deadline := time.Now().Add(lb.opts.writeWait)
	var last error = ErrNoInstance
	for {
		hs, err := lb.HealthCheckAll(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("find the primary: %w", ctx.Err())
		}
		if err != nil {
			last = err
		}
		if addr := primaryIn(hs); addr != "" {
			c := lb.clientFor(addr).FollowPrimary()
			// A primary only named by a replica may be outside the list:
			// confirm it before handing it out.
			cctx, cancel := context.WithTimeout(ctx, lb.opts.checkTimeout)
			st, err := c.Status(cctx)
			cancel()
			if err == nil && st.Writable() {
				lb.mu.Lock()
				lb.primary = c
				lb.mu.Unlock()
				return c, nil
			}
			if err != nil {
				last = err
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no primary among %d instances after %v: %w", len(hs), lb.opts.writeWait, errors.Join(ErrNoInstance, last))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("find the primary: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// primaryIn picks the primary from a health check: an instance that is
// writable, else the address the replicas name most.
func primaryIn(hs []Health) string {
	for _, h := range hs {
		if h.Err == nil && (h.Role == RolePrimary || h.Role == RoleStandalone) {
			return h.Addr
		}
	}
	votes := map[string]int{}
	best := ""
	for _, h := range hs {
		if h.Err == nil && h.PrimaryAddr != "" {
			votes[h.PrimaryAddr]++
			if best == "" || votes[h.PrimaryAddr] > votes[best] {
				best = h.PrimaryAddr
			}
		}
	}
	return best
}

// clientFor returns the client of a listed instance, or a new one for an
// address outside the list.
func (lb *LoadBalancer) clientFor(addr string) *Client {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for _, c := range lb.instances {
		if c.Addr() == normalize(addr) {
			return c
		}
	}
	return NewClient(addr, lb.clientOpt...)
}

// Write runs fn against the primary, and once more against the primary
// found anew if fn failed because the instance was not (or no longer)
// the primary: such a write was refused before it committed anything, so
// repeating it cannot apply it twice. An unreachable primary is not
// retried: the write may have committed before the connection broke, and
// only the caller knows whether repeating it is safe.
func (lb *LoadBalancer) Write(ctx context.Context, fn func(*Client) error) error {
	c, err := lb.GetWriteConnection(ctx)
	if err != nil {
		return err
	}
	err = fn(c)
	if err == nil || !errors.Is(err, ErrNotPrimary) {
		return err
	}
	lb.mu.Lock()
	lb.primary = nil
	lb.mu.Unlock()
	if c, err = lb.GetWriteConnection(ctx); err != nil {
		return err
	}
	return fn(c)
}
