// Command democluster is `make demo-cluster`: a real nats-server with
// JetStream and three sombra-server processes on loopback, writes through
// cluster.LoadBalancer, then the primary is SIGKILLed and the demo shows
// the failover. Every process is a real binary from -bin.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sombradb/sombra/cluster"
	"github.com/sombradb/sombra/engine"
)

func main() {
	bin := flag.String("bin", "bin", "directory holding nats-server and sombra-server")
	dir := flag.String("dir", "demo-cluster", "working directory (removed and recreated)")
	flag.Parse()
	if err := run(*bin, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "demo-cluster:", err)
		os.Exit(1)
	}
}

type proc struct {
	name string
	url  string
	cmd  *exec.Cmd
}

var procs []*proc

func stopAll() {
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			_ = p.cmd.Wait()
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startServer(bin, name string, args ...string) (*proc, error) {
	cmd := exec.Command(filepath.Join(bin, "sombra-server"), append(args, "--listen", "127.0.0.1:0", "--json")...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: cmd}
	procs = append(procs, p)
	var doc struct {
		URL string `json:"url"`
	}
	if err := json.NewDecoder(bufio.NewReader(out)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s did not start: %w", name, err)
	}
	p.url = doc.URL
	fmt.Printf("started %s (pid %d) at %s\n", name, cmd.Process.Pid, p.url)
	return p, nil
}

func run(bin, dir string) error {
	defer stopAll()
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	nats := exec.Command(filepath.Join(bin, "nats-server"), "-js", "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-sd", filepath.Join(dir, "nats"))
	if err := nats.Start(); err != nil {
		return fmt.Errorf("start nats-server: %w", err)
	}
	procs = append(procs, &proc{name: "nats", cmd: nats})
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		} else if time.Now().After(deadline) {
			return fmt.Errorf("nats-server does not listen on %d: %w", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("started nats-server (pid %d) at %s\n", nats.Process.Pid, natsURL)
	member := func(node, role string) []string {
		return []string{"--db", filepath.Join(dir, node+".db"), "--replicate", natsURL, "--name", "demo", "--node", node,
			"--role", role, "--mode", "sync", "--lease-ttl", "2s"}
	}
	a, err := startServer(bin, "a", member("a", "primary")...)
	if err != nil {
		return err
	}
	b, err := startServer(bin, "b", member("b", "replica")...)
	if err != nil {
		return err
	}
	c, err := startServer(bin, "c", member("c", "replica")...)
	if err != nil {
		return err
	}
	lb, err := cluster.NewLoadBalancer([]string{a.url, b.url, c.url})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := waitHealthy(ctx, lb); err != nil {
		return err
	}
	fmt.Println("\nwriting 200 nodes through the load balancer (sync mode)")
	lsn, err := write(ctx, lb, 0, 200)
	if err != nil {
		return err
	}
	r, err := lb.GetReadConnection(ctx, cluster.MinLSN(lsn))
	if err != nil {
		return err
	}
	ids, err := r.NodesByLabel(ctx, "demo")
	if err != nil {
		return err
	}
	fmt.Printf("read your writes: %s has applied LSN %d and holds %d nodes\n", r.Addr(), lsn, len(ids))
	if err := show(ctx, lb); err != nil {
		return err
	}

	fmt.Printf("\nSIGKILL the primary %s (pid %d)\n", a.url, a.cmd.Process.Pid)
	killed := time.Now()
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	_ = a.cmd.Wait()
	w, err := lb.GetWriteConnection(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("new primary %s after %v\n", w.Addr(), time.Since(killed).Round(10*time.Millisecond))
	if _, err := write(ctx, lb, 200, 50); err != nil {
		return err
	}
	ids, err = w.NodesByLabel(ctx, "demo")
	if err != nil {
		return err
	}
	fmt.Printf("50 more writes went to the new primary, which holds %d nodes (every acknowledged write)\n", len(ids))
	return show(ctx, lb)
}

func write(ctx context.Context, lb *cluster.LoadBalancer, from, n int) (uint64, error) {
	var lsn uint64
	for i := from; i < from+n; i++ {
		err := lb.Write(ctx, func(w *cluster.Client) (err error) {
			_, lsn, err = w.CreateNode(ctx, []string{"demo"}, engine.Properties{"i": engine.IntValue(int64(i))})
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("write %d: %w", i, err)
		}
	}
	return lsn, nil
}

func waitHealthy(ctx context.Context, lb *cluster.LoadBalancer) error {
	for {
		hs, err := lb.HealthCheckAll(ctx)
		ok := err == nil
		for _, h := range hs {
			ok = ok && h.Healthy
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func show(ctx context.Context, lb *cluster.LoadBalancer) error {
	hs, err := lb.HealthCheckAll(ctx)
	if err != nil {
		return err
	}
	fmt.Println("\nHealthCheckAll:")
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "instance\trole\thealthy\tapplied LSN\tlag\tlatency\t")
	for _, h := range hs {
		role := h.Role
		if h.Err != nil {
			role = "down"
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%v\t%v\t\n", h.Addr, role, h.Healthy, h.AppliedLSN, h.Lag.Round(time.Millisecond), h.Latency.Round(time.Microsecond))
	}
	return tw.Flush()
}
