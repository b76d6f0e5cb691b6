package cluster_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sombradb/sombra/cluster"
	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/replication"
	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/commands/healthcheck"
	"github.com/sombradb/sombra/internal/commands/info"
)

// One primary and two replicas, each its own sombra-server process on a
// real NATS JetStream: writes through the load balancer reach both
// replicas (same logical hash at the same LSN), reads go to a replica
// that has the write, a write sent to a replica is refused with the
// primary's address and a following client gets there, a SIGKILLed
// replica catches up when restarted, and SIGTERM stops an instance
// cleanly.
func TestClusterReplicatesAndRedirects(t *testing.T) {
	natsURL, a, b, c := startSet(t)
	lb, err := cluster.NewLoadBalancer([]string{a.url, b.url, c.url}, cluster.WithWriteWait(15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	hs := waitHealthy(t, lb)
	roles := map[string]string{}
	for _, h := range hs {
		roles[h.Addr] = h.Role
		if h.Latency <= 0 {
			t.Errorf("%s: latency %v", h.Addr, h.Latency)
		}
	}
	if roles[a.url] != cluster.RolePrimary || roles[b.url] != cluster.RoleReplica || roles[c.url] != cluster.RoleReplica {
		t.Fatalf("roles %v", roles)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var last engine.NodeID
	var lsn uint64
	for i := range 30 {
		err := lb.Write(ctx, func(w *cluster.Client) (err error) {
			last, lsn, err = w.CreateNode(ctx, []string{"item"}, engine.Properties{"i": engine.IntValue(int64(i))})
			return err
		})
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	w, err := lb.GetWriteConnection(ctx)
	if err != nil || w.Addr() != a.url {
		t.Fatalf("write connection %v: %v", w, err)
	}
	zero := 0
	res, err := w.Batch(ctx, []cluster.Op{{Op: cluster.OpCreateNode, Labels: []string{"hub"}},
		{Op: cluster.OpCreateEdge, FromOp: &zero, To: uint64(last), Label: "points"}})
	if err != nil {
		t.Fatal(err)
	}
	lsn = res.LSN

	// Read your writes: a replica that has applied the batch.
	r, err := lb.GetReadConnection(ctx, cluster.MinLSN(lsn))
	if err != nil {
		t.Fatal(err)
	}
	if r.Addr() == a.url {
		t.Fatalf("read routed to the primary although replicas are healthy")
	}
	if nb, err := r.Neighbors(ctx, engine.NodeID(res.IDs[0]), "out", "points"); err != nil || len(nb) != 1 || nb[0].Node != last {
		t.Fatalf("read on %s: %+v %v", r.Addr(), nb, err)
	}
	sameGraph(t, lsn, cluster.NewClient(a.url), cluster.NewClient(b.url), cluster.NewClient(c.url))

	// A replica SIGKILLed while writes go on catches up when restarted
	// on its file.
	c.kill()
	for i := range 10 {
		if _, lsn, err = w.CreateNode(ctx, []string{"while-c-was-down"}, engine.Properties{"i": engine.IntValue(int64(i))}); err != nil {
			t.Fatal(err)
		}
	}
	c2 := startServer(t, "c again", c.db, replicated(natsURL, "c", "replica")...)
	sameGraph(t, lsn, cluster.NewClient(a.url), cluster.NewClient(b.url), cluster.NewClient(c2.url))

	// A write sent to a replica names the primary; a following client
	// goes there.
	rc := cluster.NewClient(b.url)
	_, _, err = rc.CreateNode(ctx, []string{"direct"}, nil)
	if p, ok := cluster.PrimaryOf(err); !isNotPrimary(err) || !ok || p != a.url {
		t.Fatalf("write to a replica: %v (primary %q)", err, p)
	}
	fc := rc.FollowPrimary()
	if _, _, err := fc.CreateNode(ctx, []string{"direct"}, nil); err != nil || fc.Addr() != a.url {
		t.Fatalf("followed write: %v, now at %s", err, fc.Addr())
	}

	// A replica's metrics carry its role and the engine's own export.
	resp, err := http.Get(b.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`sombra_replication_role{role="replica"} 1`, "sombra_transactions_total", "sombra_replication_applied_lsn"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The operator tools show the replica's role and lag from its file.
	toolsSeeReplica(t, b.db, lsn)
	if code := b.stop(); code != 0 {
		t.Fatalf("SIGTERM: exit %d, want 0", code)
	}
	if _, err := os.Stat(b.db + replication.StatusFileSuffix); !os.IsNotExist(err) {
		t.Fatalf("a cleanly stopped replica left its status file: %v", err)
	}
	if code := a.stop(); code != 0 {
		t.Fatalf("SIGTERM of the primary: exit %d, want 0", code)
	}
}

// SIGKILL the primary during sync writes through the load balancer: a
// replica takes over, every acknowledged write is on the new primary
// exactly once, the other replica follows it, and the old primary,
// restarted, cannot write.
func TestClusterFailoverAfterSIGKILL(t *testing.T) {
	natsURL, a, b, c := startSet(t)
	lb, err := cluster.NewLoadBalancer([]string{a.url, b.url, c.url}, cluster.WithWriteWait(15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, lb)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	var mu sync.Mutex
	acked := map[int64]bool{}
	ackedAfterKill := 0
	var killed bool
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
			err := lb.Write(wctx, func(w *cluster.Client) error {
				_, _, err := w.CreateNode(wctx, []string{"w"}, engine.Properties{"i": engine.IntValue(i)})
				return err
			})
			wcancel()
			if err != nil {
				time.Sleep(20 * time.Millisecond) // not acknowledged: maybe applied, never retried
				continue
			}
			mu.Lock()
			acked[i] = true
			if killed {
				ackedAfterKill++
			}
			mu.Unlock()
		}
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("40 acknowledged writes", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 40 })
	a.kill()
	killedAt := time.Now()
	mu.Lock()
	killed = true
	mu.Unlock()
	waitFor("20 writes acknowledged by the new primary", func() bool { mu.Lock(); defer mu.Unlock(); return ackedAfterKill >= 20 })
	close(stop)
	<-writerDone
	t.Logf("writes resumed %v after SIGKILL; %d acknowledged", time.Since(killedAt), len(acked))

	w, err := lb.GetWriteConnection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w.Addr() == a.url {
		t.Fatalf("the killed primary is still the write connection")
	}
	seen := map[int64]int{}
	ids, err := w.NodesByLabel(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		n, err := w.GetNode(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		i, _ := n.Properties["i"].Int()
		seen[i]++
	}
	for i := range acked {
		if seen[i] != 1 {
			t.Errorf("acknowledged write %d is on the new primary %d times", i, seen[i])
		}
	}
	for i, n := range seen {
		if n > 1 {
			t.Errorf("write %d is on the new primary %d times", i, n)
		}
	}
	st, err := w.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := cluster.NewClient(b.url)
	if w.Addr() == b.url {
		other = cluster.NewClient(c.url)
	}
	sameGraph(t, st.AppliedLSN, w, other)

	// The old primary comes back on its file: another node holds the
	// lease, so it cannot write, and it names the new primary.
	old := startServer(t, "a again", a.db, replicated(natsURL, "a", "primary")...)
	oc := cluster.NewClient(old.url)
	ost, err := oc.Status(ctx)
	if err != nil || ost.Writable() {
		t.Fatalf("restarted old primary: %+v %v", ost, err)
	}
	t.Logf("old primary restarted as %s at LSN %d", ost.Role, ost.AppliedLSN)
	_, _, err = oc.CreateNode(ctx, []string{"stale"}, nil)
	if !isNotPrimary(err) {
		t.Fatalf("restarted old primary wrote: %v", err)
	}
	if p, _ := cluster.PrimaryOf(err); p != w.Addr() {
		t.Errorf("restarted old primary names %q as primary, want %s", p, w.Addr())
	}
	if ids, _ := w.NodesByLabel(ctx, "stale"); len(ids) != 0 {
		t.Fatalf("stale write reached the primary: %v", ids)
	}
}

// toolsSeeReplica runs sombra-info and sombra-health-check on a running
// replica's file.
func toolsSeeReplica(t *testing.T, db string, lsn uint64) {
	t.Helper()
	// The node rewrites its status file every second.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, _, out, errOut := cli.Test()
		if code := cli.Run(info.NewCommand(s), []string{"--db", db, "--json"}); code != 0 {
			t.Fatalf("sombra-info: exit %d: %s", code, errOut)
		}
		var doc info.Result
		if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		r := doc.Replication
		if r != nil && r.Role == cluster.RoleReplica && !r.Stale && r.AppliedLSN >= lsn && r.Primary != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sombra-info replication: %+v, want a replica at LSN %d at least", r, lsn)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s, _, out, errOut := cli.Test()
	code := cli.Run(healthcheck.NewCommand(s), []string{"--db", db, "--json", "--max-lag", "30s", "--min-free-disk", "1KiB"})
	var hc healthcheck.Result
	if err := json.Unmarshal(out.Bytes(), &hc); err != nil {
		t.Fatalf("sombra-health-check: exit %d: %v: %s", code, err, errOut)
	}
	found := false
	for _, c := range hc.Checks {
		if c.Name == "replication" {
			found = true
			if !c.Healthy || !strings.Contains(c.Message, "replica") {
				t.Errorf("replication check: %+v", c)
			}
		}
	}
	if !found {
		t.Errorf("sombra-health-check has no replication check (exit %d): %s", code, out)
	}
}
