package cluster_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sombradb/sombra/cluster"
	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/commands/server"
	"github.com/sombradb/sombra/internal/natstest"
)

// argsEnv carries a child's sombra-server arguments (JSON list).
const argsEnv = "SOMBRA_TEST_SERVER_ARGS"

// TestMain runs sombra-server when started as a child by startServer:
// each instance is a separate process, as in production, that the tests
// can SIGKILL.
func TestMain(m *testing.M) {
	if v := os.Getenv(argsEnv); v != "" {
		var args []string
		if err := json.Unmarshal([]byte(v), &args); err != nil {
			panic(err)
		}
		os.Args = append([]string{"sombra-server"}, args...)
		os.Exit(cli.Main(server.NewCommand))
	}
	os.Exit(m.Run())
}

// instance is one sombra-server process.
type instance struct {
	t    *testing.T
	name string
	db   string
	url  string
	cmd  *exec.Cmd
	done chan struct{}
	code int
}

// startServer starts sombra-server on a loopback port with args and waits
// until it serves (it prints its start document then).
func startServer(t *testing.T, name, db string, args ...string) *instance {
	t.Helper()
	args = append([]string{"--db", db, "--listen", "127.0.0.1:0", "--json"}, args...)
	enc, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), argsEnv+"="+string(enc))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in := &instance{t: t, name: name, db: db, cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		var doc struct {
			URL  string `json:"url"`
			Role string `json:"role"`
		}
		err := json.NewDecoder(bufio.NewReader(out)).Decode(&doc)
		in.url = doc.URL
		started <- err
	}()
	go func() {
		_ = cmd.Wait()
		in.code = cmd.ProcessState.ExitCode()
		close(in.done)
	}()
	t.Cleanup(in.kill)
	select {
	case err := <-started:
		if err != nil {
			<-in.done
			t.Fatalf("%s did not start (exit %d): %v", name, in.code, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start in 30s", name)
	}
	return in
}

// stop sends SIGTERM and returns the exit code.
func (in *instance) stop() int {
	in.t.Helper()
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(20 * time.Second):
		in.t.Fatalf("%s did not stop on SIGTERM", in.name)
	}
	return in.code
}

func (in *instance) kill() {
	select {
	case <-in.done:
	default:
		_ = in.cmd.Process.Signal(syscall.SIGKILL)
		<-in.done
	}
}

// replicated are the flags of a member of the test's set: short leases
// so a failover takes about a second.
func replicated(natsURL, node, role string) []string {
	return []string{"--replicate", natsURL, "--name", "graph", "--node", node, "--role", role, "--mode", "sync",
		"--lease-ttl", "1s", "--sync-timeout", "2s", "--snapshot-interval=-1s", "--start-timeout", "20s", "--max-lag", "2s"}
}

// startSet starts NATS, a primary and two replicas.
func startSet(t *testing.T) (natsURL string, a, b, c *instance) {
	t.Helper()
	natsURL = natstest.Start(t, t.TempDir(), 0).ClientURL()
	dir := t.TempDir()
	a = startServer(t, "a", filepath.Join(dir, "a.db"), replicated(natsURL, "a", "primary")...)
	b = startServer(t, "b", filepath.Join(dir, "b.db"), replicated(natsURL, "b", "replica")...)
	c = startServer(t, "c", filepath.Join(dir, "c.db"), replicated(natsURL, "c", "replica")...)
	return natsURL, a, b, c
}

// waitHealthy waits until every instance of lb reports healthy.
func waitHealthy(t *testing.T, lb *cluster.LoadBalancer) []cluster.Health {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		hs, err := lb.HealthCheckAll(context.Background())
		all := err == nil
		for _, h := range hs {
			all = all && h.Healthy
		}
		if all {
			return hs
		}
		if time.Now().After(deadline) {
			t.Fatalf("not all healthy: %+v (%v)", hs, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sameGraph checks that every client is at LSN lsn with one logical hash.
func sameGraph(t *testing.T, lsn uint64, clients ...*cluster.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var first cluster.HashResult
	for i, c := range clients {
		h, err := c.AtLeast(lsn).LogicalHash(ctx)
		if err != nil {
			t.Fatalf("%s: %v", c.Addr(), err)
		}
		if h.LSN != lsn {
			t.Fatalf("%s at LSN %d, want %d", c.Addr(), h.LSN, lsn)
		}
		if i == 0 {
			first = h
		} else if h.Hash != first.Hash {
			t.Fatalf("%s: hash %s at LSN %d, %s has %s", c.Addr(), h.Hash, lsn, clients[0].Addr(), first.Hash)
		}
	}
}

func isNotPrimary(err error) bool { return errors.Is(err, cluster.ErrNotPrimary) }

// Alone, a standalone instance serves both reads and writes; an address
// nobody listens on is reported unreachable, and with nothing reachable
// the load balancer says so instead of waiting forever.
func TestLoadBalancerStandaloneAndDown(t *testing.T) {
	s := startServer(t, "solo", filepath.Join(t.TempDir(), "solo.db"), "--create")
	dead := "127.0.0.1:1" // nothing listens on port 1
	lb, err := cluster.NewLoadBalancer([]string{s.url, dead})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hs, err := lb.HealthCheckAll(ctx)
	if err != nil || !hs[0].Healthy || hs[0].Role != cluster.RoleStandalone || hs[1].Healthy || !errors.Is(hs[1].Err, cluster.ErrUnreachable) {
		t.Fatalf("health %+v %v", hs, err)
	}
	r, err := lb.GetReadConnection(ctx)
	if err != nil || r.Addr() != s.url {
		t.Fatalf("read connection %v %v", r, err)
	}
	w, err := lb.GetWriteConnection(ctx)
	if err != nil || w.Addr() != s.url {
		t.Fatalf("write connection %v %v", w, err)
	}
	if _, _, err := w.CreateNode(ctx, []string{"x"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.NewLoadBalancer(nil); !errors.Is(err, cluster.ErrInvalid) {
		t.Fatalf("no addresses: %v", err)
	}
	down, _ := cluster.NewLoadBalancer([]string{dead}, cluster.WithWriteWait(200*time.Millisecond))
	if _, err := down.HealthCheckAll(ctx); !errors.Is(err, cluster.ErrNoInstance) {
		t.Fatalf("all down: %v", err)
	}
	if _, err := down.GetWriteConnection(ctx); !errors.Is(err, cluster.ErrNoInstance) {
		t.Fatalf("no primary: %v", err)
	}
}

// runServer runs sombra-server to its end and returns its exit code and
// stderr: for starts that must fail.
func runServer(t *testing.T, args ...string) (int, string) {
	t.Helper()
	enc, _ := json.Marshal(append(args, "--listen", "127.0.0.1:0"))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), argsEnv+"="+string(enc))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("sombra-server %v did not exit", args)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// A replica started on the file of another database is refused with a
// clear error, and the file is left as it was.
func TestReplicaOfAnotherDatabaseRefused(t *testing.T) {
	natsURL := natstest.Start(t, t.TempDir(), 0).ClientURL()
	dir := t.TempDir()
	a := startServer(t, "a", filepath.Join(dir, "a.db"), replicated(natsURL, "a", "primary")...)
	if _, _, err := cluster.NewClient(a.url).CreateNode(context.Background(), []string{"x"}, nil); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.db")
	db, err := engine.Open(other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.LogicalHash(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before, _ := os.ReadFile(other)
	code, stderr := runServer(t, append([]string{"--db", other}, replicated(natsURL, "o", "replica")...)...)
	if code != cli.ExitFailed || !strings.Contains(stderr, "replicates database") || !strings.Contains(stderr, "nothing was changed") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	t.Log(strings.TrimSpace(stderr))
	if after, _ := os.ReadFile(other); string(after) != string(before) {
		t.Fatal("the refused file was changed")
	}
}
