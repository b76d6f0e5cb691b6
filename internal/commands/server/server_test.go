package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sombradb/sombra/cluster"
	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/internal/cli"
)

// serve runs sombra-server in-process on a loopback port with args and
// returns its URL; the server stops (and must exit 0) when the test ends.
func serve(t *testing.T, args ...string) string {
	t.Helper()
	s, _, _, errOut := cli.Test()
	opts := &Options{IO: s}
	addr := make(chan string, 1)
	opts.Ready = func(a string) { addr <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- cli.RunContext(ctx, NewCmd(opts, nil), append([]string{"--listen", "127.0.0.1:0"}, args...))
	}()
	select {
	case a := <-addr:
		t.Cleanup(func() {
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("server exit %d after stop: %s", code, errOut)
			}
		})
		return "http://" + a
	case code := <-done:
		cancel()
		t.Fatalf("server exited %d: %s", code, errOut)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	return ""
}

func newDB(t *testing.T, setup func(db *engine.DB)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "g.db")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(db)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestServerGraphAPI(t *testing.T) {
	path := newDB(t, func(db *engine.DB) {
		if err := db.CreatePropertyIndex("age"); err != nil {
			t.Fatal(err)
		}
	})
	c := cluster.NewClient(serve(t, "--db", path))
	ctx := context.Background()
	props := engine.Properties{"name": engine.StringValue("ann"), "age": engine.IntValue(30), "w": engine.FloatValue(2),
		"raw": engine.BytesValue([]byte{0, 1, 255}), "inf": engine.FloatValue(math.Inf(1)), "ok": engine.BoolValue(true), "none": engine.NullValue()}
	a, lsn1, err := c.CreateNode(ctx, []string{"person"}, props)
	if err != nil || a == 0 || lsn1 == 0 {
		t.Fatalf("create: %v %d %d", err, a, lsn1)
	}
	b, _, err := c.CreateNode(ctx, []string{"person"}, engine.Properties{"age": engine.IntValue(50)})
	if err != nil {
		t.Fatal(err)
	}
	e, lsn3, err := c.CreateEdge(ctx, a, b, "knows", engine.Properties{"since": engine.IntValue(2020)})
	if err != nil || lsn3 <= lsn1 {
		t.Fatalf("edge: %v, lsn %d after %d", err, lsn3, lsn1)
	}
	if _, _, err := c.CreateEdge(ctx, a, b, "likes", nil); err != nil {
		t.Fatal(err)
	}
	n, err := c.GetNode(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range props {
		if got, ok := n.Properties[k]; !ok || !got.Equal(v) || got.Kind() != v.Kind() {
			t.Errorf("property %s: got %v (%v), want %v (%v)", k, got, got.Kind(), v, v.Kind())
		}
	}
	if ed, err := c.GetEdge(ctx, e); err != nil || ed.From != a || ed.To != b || ed.Label != "knows" {
		t.Fatalf("edge %+v %v", ed, err)
	}
	nb, err := c.Neighbors(ctx, b, "in", "knows")
	if err != nil || len(nb) != 1 || nb[0].Node != a || nb[0].Edge != e {
		t.Fatalf("neighbours in/knows: %+v %v", nb, err)
	}
	if nb, _ := c.Neighbors(ctx, a, "both", ""); len(nb) != 2 {
		t.Fatalf("neighbours both: %+v", nb)
	}
	ids, err := c.NodesByPropertyRange(ctx, "age", engine.IntValue(25), engine.IntValue(35))
	if err != nil || !slices.Equal(ids, []engine.NodeID{a}) {
		t.Fatalf("range: %v %v", ids, err)
	}
	if ids, _ := c.NodesByProperty(ctx, "name", engine.StringValue("ann")); !slices.Equal(ids, []engine.NodeID{a}) {
		t.Fatalf("by property: %v", ids)
	}
	if _, err := c.UpdateProperties(ctx, a, engine.Properties{"age": engine.IntValue(31)}, "name"); err != nil {
		t.Fatal(err)
	}
	n, _ = c.GetNode(ctx, a)
	if _, has := n.Properties["name"]; has || !n.Properties["age"].Equal(engine.IntValue(31)) {
		t.Fatalf("after update: %v", n.Properties)
	}
	if _, err := c.DeleteEdge(ctx, e); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetEdge(ctx, e); !errors.Is(err, cluster.ErrNotFound) {
		t.Fatalf("deleted edge: %v", err)
	}
	if _, err := c.DeleteNode(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetNode(ctx, b); !errors.Is(err, cluster.ErrNotFound) {
		t.Fatalf("deleted node: %v", err)
	}
	if _, err := c.UpdateProperties(ctx, 999, engine.Properties{"x": engine.IntValue(1)}); !errors.Is(err, cluster.ErrNotFound) {
		t.Fatalf("update of a missing node: %v", err)
	}
	if _, err := c.NodesByPropertyRange(ctx, "age", engine.IntValue(1), engine.FloatValue(2)); !errors.Is(err, cluster.ErrInvalid) {
		t.Fatalf("mixed range: %v", err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Role != cluster.RoleStandalone || !st.Ready || st.AppliedLSN == 0 {
		t.Fatalf("status %+v %v", st, err)
	}
	// A read that asks for an LSN the database never reaches fails at once.
	if _, err := c.AtLeast(st.AppliedLSN+10).GetNode(ctx, a); !errors.Is(err, cluster.ErrInvalid) {
		t.Fatalf("future MinLSN: %v", err)
	}
}

// A batch commits all its operations or none.
func TestServerBatchAllOrNothing(t *testing.T) {
	c := cluster.NewClient(serve(t, "--db", newDB(t, nil)))
	ctx := context.Background()
	zero := 0
	res, err := c.Batch(ctx, []cluster.Op{
		{Op: cluster.OpCreateNode, Labels: []string{"a"}},
		{Op: cluster.OpCreateNode, Labels: []string{"a"}},
		{Op: cluster.OpCreateEdge, FromOp: &zero, To: 2, Label: "l"},
	})
	if err != nil || len(res.IDs) != 3 || res.IDs[0] != 1 || res.IDs[2] == 0 || res.LSN == 0 {
		t.Fatalf("batch: %+v %v", res, err)
	}
	_, err = c.Batch(ctx, []cluster.Op{
		{Op: cluster.OpCreateNode, Labels: []string{"b"}},
		{Op: cluster.OpSetProperties, ID: 1, Set: cluster.Props{"x": engine.IntValue(1)}},
		{Op: cluster.OpDeleteEdge, ID: 77}, // fails: the whole batch is rolled back
	})
	if !errors.Is(err, cluster.ErrNotFound) || !strings.Contains(err.Error(), "operation 2") {
		t.Fatalf("failing batch: %v", err)
	}
	if ids, _ := c.NodesByLabel(ctx, "b"); len(ids) != 0 {
		t.Fatalf("a failed batch left nodes %v", ids)
	}
	if n, _ := c.GetNode(ctx, 1); len(n.Properties) != 0 {
		t.Fatalf("a failed batch left properties %v", n.Properties)
	}
	if _, err := c.Batch(ctx, []cluster.Op{{Op: "explode"}}); !errors.Is(err, cluster.ErrInvalid) {
		t.Fatalf("unknown op: %v", err)
	}
}

// Tokens map to the users of the stored access policy: no token is 401,
// a reader's write is 403, a writer's write succeeds.
func TestServerTokens(t *testing.T) {
	path := newDB(t, func(db *engine.DB) {
		err := db.SetAccessPolicy(&engine.AccessPolicy{
			Roles: map[string][]engine.Permission{"ro": {engine.PermissionRead}, "rw": {engine.PermissionRead, engine.PermissionWrite},
				"admin": engine.AllPermissions()},
			Users: map[string][]string{"rita": {"ro"}, "will": {"rw"}, "root": {"admin"}}})
		if err != nil {
			t.Fatal(err)
		}
	})
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("# test tokens\nreader-token-0123456789 rita\nwriter-token-0123456789 will\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, _, _, errOut := cli.Test()
	if code := cli.Run(NewCmd(&Options{IO: s}, nil), []string{"--db", path, "--token-file", tokens}); code != cli.ExitUsage || !strings.Contains(errOut.String(), "chmod 600") {
		t.Fatalf("world-readable token file: exit %d: %s", code, errOut)
	}
	if err := os.Chmod(tokens, 0o600); err != nil {
		t.Fatal(err)
	}
	url := serve(t, "--db", path, "--token-file", tokens)
	ctx := context.Background()
	if _, _, err := cluster.NewClient(url).CreateNode(ctx, nil, nil); !errors.Is(err, cluster.ErrUnauthorized) {
		t.Fatalf("no token: %v", err)
	}
	if _, _, err := cluster.NewClient(url, cluster.WithToken("reader-token-0123456789")).CreateNode(ctx, nil, nil); !errors.Is(err, cluster.ErrPermissionDenied) {
		t.Fatalf("reader writes: %v", err)
	}
	id, _, err := cluster.NewClient(url, cluster.WithToken("writer-token-0123456789")).CreateNode(ctx, []string{"x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.NewClient(url, cluster.WithToken("reader-token-0123456789")).GetNode(ctx, id); err != nil {
		t.Fatalf("reader reads: %v", err)
	}
}

// Without tokens or TLS only loopback addresses are served.
func TestServerRefusesOpenListen(t *testing.T) {
	path := newDB(t, nil)
	for _, listen := range []string{"0.0.0.0:0", "192.0.2.1:8080"} {
		s, _, _, errOut := cli.Test()
		code := cli.Run(NewCmd(&Options{IO: s}, nil), []string{"--db", path, "--listen", listen})
		if code != cli.ExitUsage || !strings.Contains(errOut.String(), "not a loopback address") {
			t.Errorf("--listen %s: exit %d: %s", listen, code, errOut)
		}
	}
	// Listening everywhere, a replicated instance must say where clients
	// reach it: 0.0.0.0 is no address to send writes to.
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("a-token-of-enough-length u\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, _, _, errOut := cli.Test()
	code := cli.Run(NewCmd(&Options{IO: s}, nil), []string{"--db", path, "--listen", "0.0.0.0:0", "--token-file", tokens, "--replicate", "nats://127.0.0.1:1"})
	if code != cli.ExitUsage || !strings.Contains(errOut.String(), "give --advertise") {
		t.Errorf("0.0.0.0 without --advertise: exit %d: %s", code, errOut)
	}
	s, _, _, errOut = cli.Test()
	if code := cli.Run(NewCmd(&Options{IO: s}, nil), []string{"--db", path, "--mode", "sync"}); code != cli.ExitUsage || !strings.Contains(errOut.String(), "--mode needs --replicate") {
		t.Errorf("--mode without --replicate: exit %d: %s", code, errOut)
	}
	s, _, _, errOut = cli.Test()
	if code := cli.Run(NewCmd(&Options{IO: s}, nil), []string{"--db", filepath.Join(t.TempDir(), "missing.db")}); code != cli.ExitFailed || !strings.Contains(errOut.String(), "--create") {
		t.Errorf("missing database: exit %d: %s", code, errOut)
	}
}

// Concurrent writers through HTTP share the one connection's writer
// lock: each waits its turn (the busy timeout), none fails.
func TestServerConcurrentWrites(t *testing.T) {
	c := cluster.NewClient(serve(t, "--db", newDB(t, nil)))
	ctx := context.Background()
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 25 {
				if _, _, err := c.CreateNode(ctx, []string{"c"}, nil); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if ids, err := c.NodesByLabel(ctx, "c"); err != nil || len(ids) != 200 {
		t.Fatalf("%d nodes, %v", len(ids), err)
	}
}

// With a certificate the server speaks HTTPS, and may listen beyond
// loopback (TLS is one of the two credentials that allow it).
func TestServerTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	url := serve(t, "--db", newDB(t, nil), "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(url, "http://") {
		t.Fatal(url)
	}
	url = "https://" + strings.TrimPrefix(url, "http://")
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c := cluster.NewClient(url, cluster.WithHTTPClient(hc))
	if _, _, err := c.CreateNode(context.Background(), []string{"x"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cluster.NewClient(strings.Replace(url, "https", "http", 1)).CreateNode(context.Background(), nil, nil); err == nil {
		t.Fatal("plain HTTP accepted by a TLS server")
	}
	if _, err := listenAddr("0.0.0.0:0", true); err != nil {
		t.Fatalf("TLS or tokens allow any address: %v", err)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sombra test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// /metrics is valid Prometheus text: the engine's database-wide export
// and the replication gauges, each family once.
func TestServerMetricsExposition(t *testing.T) {
	url := serve(t, "--db", newDB(t, nil))
	if _, _, err := cluster.NewClient(url).CreateNode(context.Background(), []string{"x"}, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("not valid exposition text: %v", err)
	}
	for _, name := range []string{"sombra_transactions_total", "sombra_replication_role", "sombra_replication_applied_lsn", "sombra_ready"} {
		if families[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	for _, m := range families["sombra_replication_role"].GetMetric() {
		if m.GetLabel()[0].GetValue() == cluster.RoleStandalone && m.GetGauge().GetValue() != 1 {
			t.Errorf("standalone role gauge %v", m.GetGauge().GetValue())
		}
	}
	if v := families["sombra_replication_applied_lsn"].GetMetric()[0].GetGauge().GetValue(); v < 1 {
		t.Errorf("applied LSN %v after a write", v)
	}
}
