package commands_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/internal/cli/clitest"
	"github.com/sombradb/sombra/internal/commands/fixture"
)

// metricsWriterEnv names the database a writer child of TestMetricsExporter
// commits to.
const metricsWriterEnv = "SOMBRA_TEST_METRICS_WRITER"

const writerCommits = 30

// metricsWriterChild commits writerCommits transactions of two nodes,
// prints DONE, and keeps the database open until stdin closes (so the
// counters are not reset before the test has read them).
func metricsWriterChild(path string) int {
	db, err := engine.OpenWithConfig(path, engine.Config{BusyTimeout: 10 * time.Second})
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	defer db.Close()
	for range writerCommits {
		if err := db.Update(func(tx *engine.Tx) error {
			for range 2 {
				if _, err := tx.CreateNode("Writer", nil); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			fmt.Println("ERR", err)
			return 1
		}
	}
	fmt.Println("DONE")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

type writerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startWriter(t *testing.T, path string) *writerProc {
	t.Helper()
	cmd, stdin, out := clitest.StartSelf(t, metricsWriterEnv+"="+path)
	w := &writerProc{cmd: cmd, stdin: stdin, out: out}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return w
}

// TestMetricsExporter runs the exporter (sombra-info --metrics prometheus
// --listen) as a real process, two writer processes commit, and a scrape
// parsed with Prometheus's own parser shows the sum of their work; a
// one-shot sombra-info --metrics (a third reading process) agrees. SIGTERM
// stops the exporter cleanly (exit 0).
func TestMetricsExporter(t *testing.T) {
	bin := binaries(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	fixture.Create(t, path, fixture.Spec{Nodes: 50, Edges: 50, Seed: 3})

	exp := exec.Command(filepath.Join(bin, "sombra-info"), "--db", path, "--metrics", "prometheus", "--listen", "127.0.0.1:0")
	stderr, err := exp.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = exp.Process.Kill(); _ = exp.Wait() }()
	errLines := bufio.NewReader(stderr)
	first, err := errLines.ReadString('\n')
	if err != nil {
		t.Fatalf("exporter: %v (%q)", err, first)
	}
	url := regexp.MustCompile(`http://127\.0\.0\.1:[0-9]+/metrics`).FindString(first)
	if url == "" {
		t.Fatalf("exporter did not say where it listens: %q", first)
	}

	a, b := startWriter(t, path), startWriter(t, path)
	for _, w := range []*writerProc{a, b} {
		if l, err := w.out.ReadString('\n'); err != nil || l != "DONE\n" {
			t.Fatalf("writer: %q %v", l, err)
		}
	}

	scrape := func() map[string]*dto.MetricFamily {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
			body, _ := io.ReadAll(resp.Body)
			t.Fatalf("scrape: %s %q: %s", resp.Status, resp.Header.Get("Content-Type"), body)
		}
		parser := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatalf("scrape is not valid Prometheus text: %v", err)
		}
		return fams
	}
	value := func(fams map[string]*dto.MetricFamily, name string) float64 {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Fatalf("%s missing", name)
		}
		m := f.Metric[0]
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
		return 0
	}
	fams := scrape()
	for name, want := range map[string]float64{
		"sombra_transactions_total":        2 * writerCommits,
		"sombra_write_operations_total":    2 * 2 * writerCommits,
		"sombra_commit_latency_seconds":    2 * writerCommits,
		"sombra_transactions_failed_total": 0,
	} {
		if got := value(fams, name); got != want {
			t.Errorf("%s = %g, want %g (the two writers' work)", name, got, want)
		}
	}
	if value(fams, "sombra_transactions_per_second") <= 0 || value(fams, "sombra_wal_frames_written_total") < 2*writerCommits {
		t.Errorf("rate since the exporter's first reading %g/s, frames %g",
			value(fams, "sombra_transactions_per_second"), value(fams, "sombra_wal_frames_written_total"))
	}
	// The next scrape's rates are since this one: nothing happened.
	if r := value(scrape(), "sombra_transactions_per_second"); r != 0 {
		t.Errorf("idle interval between scrapes: %g/s", r)
	}

	sh := newShell(t, bin, dir)
	if out := sh.ok(`sombra-info --db app.db --metrics json --interval 50ms | jq -c '[.transactions_committed, .write_operations, .transactions_per_second]'`); out != fmt.Sprintf("[%d,%d,0]\n", 2*writerCommits, 4*writerCommits) {
		t.Errorf("one-shot reading: %s", out)
	}
	if out := sh.ok(`sombra-info --db app.db --metrics statsd --interval 50ms | grep '^sombra.transactions'`); out != "sombra.transactions:0|c\nsombra.transactions_failed:0|c\nsombra.transactions_per_second:0|g\n" {
		t.Errorf("statsd: %q", out)
	}

	a.stdin.Close()
	b.stdin.Close()
	_ = a.cmd.Wait()
	_ = b.cmd.Wait()
	if err := exp.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { rest, _ := io.ReadAll(errLines); _ = rest; exited <- exp.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exporter exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("exporter did not stop within 10s of SIGTERM")
	}
}
