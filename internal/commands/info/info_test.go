package info_test

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/cli/clitest"
	"github.com/sombradb/sombra/internal/commands/fixture"
	"github.com/sombradb/sombra/internal/commands/info"
)

func newDB(t *testing.T) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "app.db")
	fixture.Create(t, path, fixture.Spec{Nodes: 300, Edges: 600, Seed: 7, Indexes: []string{"age", "email"}, DeleteEvery: 2})
	return dir, path
}

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return clitest.RunCommand(t, info.NewCommand, args...)
}

func TestGolden(t *testing.T) {
	dir, path := newDB(t)
	for _, tc := range []struct{ name, flag string }{
		{"summary", ""},
		{"indexes", "--indexes"},
		{"wal-size", "--wal-size"},
		{"fragmentation", "--fragmentation"},
	} {
		for _, js := range []bool{false, true} {
			args := []string{"--db", path}
			if tc.flag != "" {
				args = append(args, tc.flag)
			}
			golden := "testdata/" + tc.name + ".golden"
			if js {
				args = append(args, "--json")
				golden = "testdata/" + tc.name + ".json.golden"
			}
			out, errOut, code := run(t, args...)
			if code != 0 || errOut != "" {
				t.Fatalf("%v: code=%d stderr=%q", args, code, errOut)
			}
			clitest.Golden(t, golden, []byte(fixture.Scrub(out, dir)))
		}
	}
}

func TestJSONMatchesEngine(t *testing.T) {
	_, path := newDB(t)
	out, _, code := run(t, "--db", path, "--json")
	if code != 0 {
		t.Fatalf("code %d", code)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	db, err := engine.OpenWithConfig(path, engine.Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	in, err := db.Info()
	if err != nil {
		t.Fatal(err)
	}
	if doc["schema_version"] != 2.0 || doc["node_count"] != float64(in.NodeCount) || doc["edge_count"] != float64(in.EdgeCount) ||
		doc["fragmentation_percent"] != in.FragmentationPercent || doc["wal_size"] != float64(in.WALSize) {
		t.Errorf("json %v does not match engine info %+v", doc, in)
	}
	if in.NodeCount == 0 || in.FreePages == 0 || in.FragmentationPercent == 0 {
		t.Errorf("fixture should have nodes and free pages: %+v", in)
	}
}

func TestBareNumbers(t *testing.T) {
	_, path := newDB(t)
	// Leave frames in the WAL so the size is not zero.
	db, err := engine.OpenWithConfig(path, engine.Config{WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("Extra", nil); return err }); err != nil {
		t.Fatal(err)
	}
	in, _ := db.Info()
	db.Close()
	st, _ := os.Stat(path + "-wal")

	out, _, code := run(t, "--db", path, "--wal-size")
	if code != 0 || out != strconv.FormatInt(st.Size(), 10)+"\n" || st.Size() == 0 {
		t.Errorf("--wal-size = %q (code %d), WAL is %d bytes", out, code, st.Size())
	}
	out, _, code = run(t, "--db", path, "--fragmentation")
	want := strconv.Itoa(int(math.Floor(in.FragmentationPercent)))
	if code != 0 || out != want+"\n" {
		t.Errorf("--fragmentation = %q (code %d), want %s (%.3f%%)", out, code, want, in.FragmentationPercent)
	}
	// --quiet does not silence the number a script asked for.
	if out, _, _ := run(t, "--db", path, "--fragmentation", "-q"); out != want+"\n" {
		t.Errorf("--fragmentation -q = %q", out)
	}
}

func TestMetrics(t *testing.T) {
	_, path := newDB(t)
	out, errOut, code := run(t, "--db", path, "--metrics", "prometheus", "--interval", "20ms")
	if code != 0 {
		t.Fatalf("code=%d stderr=%q", code, errOut)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(out))
	if err != nil {
		t.Fatalf("invalid exposition format: %v\n%s", err, out)
	}
	for _, name := range []string{"sombra_cache_hit_rate", "sombra_commit_latency_ms", "sombra_transactions_total",
		"sombra_wal_size_bytes", "sombra_commit_latency_seconds", "sombra_busy_waits_total", "sombra_checkpoints_total"} {
		if fams[name] == nil {
			t.Errorf("metric %s missing", name)
		}
	}
	if h := fams["sombra_commit_latency_seconds"]; h == nil || h.GetType() != dto.MetricType_HISTOGRAM || len(h.Metric[0].GetHistogram().GetBucket()) != 17 {
		t.Errorf("commit latency histogram: %v", h)
	}
	for name := range fams {
		if !model.LegacyValidation.IsValidMetricName(name) {
			t.Errorf("bad metric name %q", name)
		}
	}

	out, _, code = run(t, "--db", path, "--metrics", "json", "--interval", "20ms")
	var m engine.DatabaseReport
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil || strings.Count(out, "\n") != 1 || m.IntervalSeconds < 0.02 {
		t.Errorf("--metrics json: code %d output %q", code, out)
	}

	out, _, code = run(t, "--db", path, "--metrics", "statsd", "--interval", "20ms")
	line := regexp.MustCompile(`^sombra\.[a-z0-9_]+:-?[0-9]+(\.[0-9]+)?\|(g|c)$`)
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !line.MatchString(l) {
			t.Errorf("bad statsd line %q", l)
		}
	}
	if code != 0 || !strings.Contains(out, "sombra.transactions:0|c\n") {
		t.Errorf("statsd code %d:\n%s", code, out)
	}

	out, _, code = run(t, "--db", path, "--metrics", "statsd", "--json", "--interval", "20ms")
	var doc info.MetricsResult
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || doc.SchemaVersion != 2 || doc.Format != "statsd" {
		t.Errorf("--metrics --json: code %d output %q", code, out)
	}
}

// sombra-info --metrics reports what the database's connections did, not
// what its own connection did (which is nothing): before, it printed zero
// transactions whatever the application committed. The rates come from
// two readings --interval apart: commits made between them show up.
func TestMetricsAreTheDatabases(t *testing.T) {
	_, path := newDB(t)
	app, err := engine.OpenWithConfig(path, engine.Config{WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	commit := func() {
		if err := app.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("App", nil); return err }); err != nil {
			t.Error(err)
		}
	}
	for range 25 {
		commit()
	}
	out, errOut, code := run(t, "--db", path, "--metrics", "json", "--interval", "10ms")
	var m engine.DatabaseReport
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil {
		t.Fatalf("code %d stderr %q output %q", code, errOut, out)
	}
	if m.TransactionsCommitted != 25 || m.WriteOperations != 25 || m.CommitLatency.Count() != 25 || m.WALFramesWritten == 0 {
		t.Errorf("the application's 25 commits: %+v", m.DatabaseMetrics)
	}
	if m.TransactionsPerSecond != 0 {
		t.Errorf("nothing was committed between the readings, yet %g/s", m.TransactionsPerSecond)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				commit()
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	out, _, code = run(t, "--db", path, "--metrics", "json", "--interval", "300ms")
	close(stop)
	<-done
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil || m.TransactionsPerSecond <= 0 || m.TransactionsCommitted <= 25 {
		t.Errorf("commits during the interval: code %d %+v", code, m.DatabaseRates)
	}
}

// When the counters cannot be read, --metrics fails and says why; it
// never prints zeros. Here a process of another build (simulated: the
// layout version is changed under a live connection) laid out the -shm.
func TestMetricsUnavailable(t *testing.T) {
	_, path := newDB(t)
	holder, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	f, err := os.OpenFile(path+"-shm", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{7, 0, 0, 0, 0, 0, 0, 0}, 2048); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, errOut, code := run(t, "--db", path, "--metrics", "prometheus", "--interval", "10ms")
	if code != 1 || out != "" || !strings.Contains(errOut, "database-wide metrics unavailable") || !strings.Contains(errOut, "version 7") ||
		strings.Count(errOut, "\n") != 1 {
		t.Errorf("code %d stdout %q stderr %q", code, out, errOut)
	}
}

// TestReadOnly proves sombra-info never writes the database or its WAL, also
// while another connection has committed frames in the WAL, holds the
// writer lock with an open transaction, and the WAL ends in a torn frame.
func TestReadOnly(t *testing.T) {
	_, path := newDB(t)
	check := func(name string) {
		t.Helper()
		before := fixture.Sums(t, path)
		for _, args := range [][]string{{}, {"--json"}, {"--wal-size"}, {"--fragmentation"}, {"--indexes"}, {"--metrics", "prometheus", "--interval", "10ms"}} {
			if _, errOut, code := run(t, append([]string{"--db", path}, args...)...); code != 0 {
				t.Fatalf("%s %v: code=%d stderr=%q", name, args, code, errOut)
			}
		}
		if after := fixture.Sums(t, path); after != before {
			t.Errorf("%s: files changed:\nbefore %s\nafter  %s", name, before, after)
		}
	}
	check("idle")

	w, err := engine.OpenWithConfig(path, engine.Config{WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 0; i < 5; i++ {
		if err := w.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("Writer", nil); return err }); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := w.BeginTransaction()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.CreateNode("Uncommitted", nil); err != nil {
		t.Fatal(err)
	}
	check("writer active")

	// A torn frame at the end of the WAL: readers ignore it, and a
	// read-only open must not truncate it away.
	f, err := os.OpenFile(path+"-wal", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte(strings.Repeat("torn", 100)))
	f.Close()
	check("torn WAL tail")
}

func TestErrors(t *testing.T) {
	dir, path := newDB(t)
	notDB := filepath.Join(dir, "notes.txt")
	fixture.MustWrite(t, notDB, []byte(strings.Repeat("just some text, certainly not a database\n", 200)))
	corrupt := filepath.Join(dir, "corrupt.db")
	fixture.Create(t, corrupt, fixture.Default)
	fixture.CorruptPage(t, corrupt, 0, 4096)

	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string // substring
	}{
		{"missing file", []string{"--db", filepath.Join(dir, "nope.db")}, 1, "nope.db: no such file"},
		{"directory", []string{"--db", dir}, 1, "is a directory"},
		{"not a database", []string{"--db", notDB}, 1, "notes.txt: not a sombra database"},
		{"corrupt header", []string{"--db", corrupt}, 4, "corrupt page 0"},
		{"no --db", []string{}, 2, "--db is required"},
		{"unknown flag", []string{"--db", path, "--frobnicate"}, 2, "unknown flag: --frobnicate"},
		{"bad metrics format", []string{"--db", path, "--metrics", "xml"}, 2, "must be one of prometheus|json|statsd"},
		{"two views", []string{"--db", path, "--wal-size", "--fragmentation"}, 2, "none of the others can be"},
		{"listen without prometheus", []string{"--db", path, "--metrics", "json", "--listen", ":9090"}, 2, "--listen needs --metrics prometheus"},
		{"listen without metrics", []string{"--db", path, "--listen", ":9090"}, 2, "--listen needs --metrics prometheus"},
		{"zero interval", []string{"--db", path, "--metrics", "json", "--interval", "0s"}, 2, "--interval must be positive"},
		{"interval without metrics", []string{"--db", path, "--interval", "2s"}, 2, "--interval needs --metrics"},
		{"interval with listen", []string{"--db", path, "--metrics", "prometheus", "--listen", ":9090", "--interval", "2s"}, 2, "--interval does not apply to --listen"},
		{"bad listen address", []string{"--db", path, "--metrics", "prometheus", "--listen", "a:b:c"}, 2, "--listen"},
		{"stray argument", []string{"--db", path, "extra"}, 2, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sums := map[string]string{}
			for _, p := range []string{path, notDB, corrupt} {
				sums[p] = fixture.Sums(t, p)
			}
			out, errOut, code := run(t, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.stderr) || out != "" {
				t.Errorf("code=%d (want %d) stdout=%q stderr=%q (want %q)", code, tt.code, out, errOut, tt.stderr)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "sombra-info: ") {
				t.Errorf("want one line starting with the tool name, got %q", errOut)
			}
			for p, s := range sums {
				if fixture.Sums(t, p) != s {
					t.Errorf("%s changed", p)
				}
			}
			// The same failure under --json is one JSON object on stderr.
			_, errOut, code = run(t, append(tt.args, "--json")...)
			var doc struct {
				SchemaVersion int `json:"schema_version"`
				Error         struct {
					Code int    `json:"code"`
					Kind string `json:"kind"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(errOut), &doc); err != nil || doc.Error.Code != tt.code || code != tt.code || doc.SchemaVersion != 1 {
				t.Errorf("--json error: code=%d stderr=%q", code, errOut)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "nope.db")); !os.IsNotExist(err) {
		t.Error("a missing database was created")
	}
}

// TestParse checks flag parsing apart from running.
func TestParse(t *testing.T) {
	var got *info.Options
	build := func(s cli.IOStreams) *cobra.Command {
		return info.NewCmd(&info.Options{IO: s}, func(o *info.Options) error { got = o; return nil })
	}
	if _, _, code := clitest.RunCommand(t, build, "--db", "x.db", "--metrics", "statsd", "--wait", "2s"); code != 0 {
		t.Fatalf("code %d", code)
	}
	if got.Globals.DB != "x.db" || got.Metrics != "statsd" || got.Globals.Wait.String() != "2s" {
		t.Errorf("parsed %+v", got)
	}
}

// lockedBuffer is an output stream read while the command still writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The exporter listens on loopback when --listen names no host, answers
// only /metrics (GET), answers 503 with the reason when the counters
// cannot be read (never zeros), and returns cleanly when its context ends
// (what SIGINT/SIGTERM do through cli.Main; TestMetricsExporter in
// internal/commands sends a real SIGTERM).
func TestListen(t *testing.T) {
	_, path := newDB(t)
	var out, errOut lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := &info.Options{IO: cli.IOStreams{Out: &out, ErrOut: &errOut}, Metrics: "prometheus", Listen: ":0", Ctx: ctx}
	opts.Globals.DB = path
	done := make(chan error, 1)
	go func() { done <- info.Run(opts) }()
	var url string
	for deadline := time.Now().Add(10 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		url = regexp.MustCompile(`http://[^ ]+/metrics`).FindString(errOut.String())
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("--listen :0 must listen on loopback only; stderr %q", errOut.String())
	}
	get := func(method, u string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("GET", url); code != 200 || !strings.Contains(body, "sombra_transactions_total 0\n") {
		t.Errorf("GET /metrics: %d %q", code, body)
	}
	if code, _ := get("GET", strings.TrimSuffix(url, "metrics")+"other"); code != 404 {
		t.Errorf("GET /other: %d", code)
	}
	if code, _ := get("POST", url); code != 405 {
		t.Errorf("POST /metrics: %d", code)
	}
	// Another build's layout in the -shm, under a live connection.
	holder, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	f, err := os.OpenFile(path+"-shm", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{5, 0, 0, 0, 0, 0, 0, 0}, 2048); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if code, body := get("GET", url); code != 503 || !strings.Contains(body, "database-wide metrics unavailable") || strings.Contains(body, "sombra_transactions_total") {
		t.Errorf("unavailable: %d %q", code, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(errOut.String(), "exporter stopped") {
			t.Errorf("after cancel: %v, stderr %q", err, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("exporter did not stop")
	}
	if out.String() != "" {
		t.Errorf("stdout %q", out.String())
	}
}

// The --metrics JSON fields are API: pinned here, documented in the help.
func TestMetricsJSONFields(t *testing.T) {
	_, path := newDB(t)
	out, errOut, code := run(t, "--db", path, "--metrics", "json", "--json", "--interval", "10ms")
	var doc struct {
		Metrics map[string]json.RawMessage `json:"metrics"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil {
		t.Fatalf("code %d stderr %q", code, errOut)
	}
	keys := make([]string, 0, len(doc.Metrics))
	for k := range doc.Metrics {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	clitest.Golden(t, "testdata/metrics-fields.golden", []byte(strings.Join(keys, "\n")+"\n"))
	for _, k := range keys {
		if !strings.Contains(info.NewCommand(cli.IOStreams{}).Long, k) {
			t.Errorf("field %s not documented in the help", k)
		}
	}
}
