package server

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/cluster"
	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/natstest"
)

// NATS stops under a sync primary: reads go on, writes fail with 503
// unavailable (or 421 once the lease lapsed), nothing refused commits,
// and writes resume when NATS is back.
func TestServerSyncWritesWhileNATSDown(t *testing.T) {
	dir, port := t.TempDir(), natstest.FreePort(t)
	nats := natstest.Start(t, dir, port)
	c := cluster.NewClient(serve(t, "--db", newDB(t, nil), "--replicate", nats.ClientURL(), "--name", "down", "--node", "p",
		"--role", "primary", "--mode", "sync", "--lease-ttl", "3s", "--sync-timeout", "500ms", "--snapshot-interval=-1s"))
	ctx := context.Background()
	id, _, err := c.CreateNode(ctx, []string{"x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	nats.Shutdown()
	nats.WaitForShutdown()
	if _, err := c.GetNode(ctx, id); err != nil {
		t.Fatalf("read while NATS is down: %v", err)
	}
	_, _, err = c.CreateNode(ctx, []string{"x"}, nil)
	var ce *cluster.Error
	if !errors.As(err, &ce) || (ce.Status != 503 && ce.Status != 421) {
		t.Fatalf("sync write with NATS down: %v", err)
	}
	t.Log(err)
	st, _ := c.Status(ctx)
	before := st.AppliedLSN
	if _, _, err := c.CreateNode(ctx, []string{"x"}, nil); !errors.Is(err, cluster.ErrUnavailable) && !errors.Is(err, cluster.ErrNotPrimary) {
		t.Fatalf("second write with NATS down: %v", err)
	}
	if st, _ := c.Status(ctx); st.AppliedLSN != before {
		t.Fatalf("a refused write was published: LSN %d -> %d", before, st.AppliedLSN)
	}
	natstest.Start(t, dir, port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, _, err := c.CreateNode(ctx, []string{"x"}, engine.Properties{"after": engine.BoolValue(true)})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes did not resume after NATS came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// While a new replica waits for the primary's snapshot, /healthz answers
// and the API says it is starting; with no primary it gives up after
// --start-timeout with an error saying why.
func TestServerStartingReplica(t *testing.T) {
	nats := natstest.Start(t, t.TempDir(), 0)
	s, _, _, errOut := cli.Test()
	addr := make(chan string, 1)
	opts := &Options{IO: s, Listening: func(a string) { addr <- a }}
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(NewCmd(opts, nil), []string{"--db", filepath.Join(t.TempDir(), "new.db"), "--listen", "127.0.0.1:0",
			"--replicate", nats.ClientURL(), "--name", "empty", "--start-timeout", "2s"})
	}()
	url := "http://" + <-addr
	resp, err := http.Get(url + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz while starting: %v %v", resp, err)
	}
	resp.Body.Close()
	_, err = cluster.NewClient(url).Status(context.Background())
	if !errors.Is(err, cluster.ErrUnavailable) || !strings.Contains(err.Error(), "starting") {
		t.Fatalf("/v1/status while starting: %v", err)
	}
	if code := <-done; code != cli.ExitFailed || !strings.Contains(errOut.String(), "no snapshot") {
		t.Fatalf("replica without a primary: exit %d: %s", code, errOut)
	}
}

// A replica that loses NATS is no longer ready: its lag figure would
// hide what it is missing. It is ready again once it reconnects.
func TestServerReplicaNotReadyWithoutNATS(t *testing.T) {
	dir, port := t.TempDir(), natstest.FreePort(t)
	nats := natstest.Start(t, dir, port)
	flags := []string{"--replicate", nats.ClientURL(), "--name", "ready", "--lease-ttl", "3s", "--snapshot-interval=-1s"}
	p := cluster.NewClient(serve(t, append([]string{"--db", filepath.Join(t.TempDir(), "p.db"), "--role", "primary", "--node", "p"}, flags...)...))
	r := cluster.NewClient(serve(t, append([]string{"--db", filepath.Join(t.TempDir(), "r.db"), "--node", "r", "--failover=false"}, flags...)...))
	ctx := context.Background()
	_, lsn, err := p.CreateNode(ctx, []string{"x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.AtLeast(lsn).GetNode(ctx, 1); err != nil {
		t.Fatal(err)
	}
	waitReady := func(want bool) cluster.Status {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := r.Status(ctx)
			if err == nil && st.Ready == want {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica ready=%v, want %v: %v", st.Ready, want, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitReady(true)
	nats.Shutdown()
	nats.WaitForShutdown()
	if st := waitReady(false); !strings.Contains(st.Error, "not connected") {
		t.Fatalf("status without NATS: %+v", st)
	}
	natstest.Start(t, dir, port)
	waitReady(true)
}
