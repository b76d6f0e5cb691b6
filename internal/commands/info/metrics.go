package info

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/internal/cli"
)

// checkMetricsFlags rejects --interval and --listen where they mean
// nothing, so a typo never silently does something else.
func checkMetricsFlags(c *cobra.Command, opts *Options) error {
	f := c.Flags()
	switch {
	case f.Changed("interval") && opts.Metrics == "":
		return cli.Usagef("--interval needs --metrics")
	case opts.Interval <= 0:
		return cli.Usagef("--interval must be positive (the rates come from two readings that far apart), got %s", opts.Interval)
	case f.Changed("listen") && opts.Metrics != "prometheus":
		return cli.Usagef("--listen needs --metrics prometheus")
	case f.Changed("listen") && opts.Listen == "":
		return cli.Usagef("--listen needs an address, such as :9090 or 0.0.0.0:9090")
	case opts.Listen != "" && f.Changed("interval"):
		return cli.Usagef("--interval does not apply to --listen: the rates are since the previous scrape")
	case opts.Listen != "" && opts.Globals.JSON:
		return cli.Usagef("--json does not apply to --listen, which serves the Prometheus text format")
	}
	return nil
}

// printMetrics reads the database-wide counters twice, --interval apart,
// and prints them with the rates between the readings.
func printMetrics(opts *Options, p *cli.Printer, db *engine.DB) error {
	first, err := db.DatabaseMetrics()
	if err != nil {
		return err
	}
	select {
	case <-time.After(opts.Interval):
	case <-ctxOf(opts).Done():
		return fmt.Errorf("interrupted before the second reading: %w", ctxOf(opts).Err())
	}
	second, err := db.DatabaseMetrics()
	if err != nil {
		return err
	}
	r := engine.NewDatabaseReport(first, second)
	// Rates are computed; the times are shown in the tools' JSON form.
	r.ReadAt, r.CountersSince = cli.Timestamp(r.ReadAt), cli.Timestamp(r.CountersSince)
	if opts.Globals.JSON {
		return p.Result(MetricsResult{SchemaVersion: cli.SchemaVersion, Format: opts.Metrics, Metrics: r}, nil)
	}
	p.Human().Line("%s", strings.TrimRight(render(r, opts.Metrics), "\n"))
	return nil
}

func render(r engine.DatabaseReport, format string) string {
	switch format {
	case "json":
		return r.ToJSON()
	case "statsd":
		return r.ToStatsD()
	}
	return r.ToPrometheusFormat()
}

func ctxOf(opts *Options) context.Context {
	if opts.Ctx != nil {
		return opts.Ctx
	}
	return context.Background()
}

// listenAddr makes an address without a host listen on loopback only: an
// exporter reachable from the network must be asked for.
func listenAddr(addr string) (string, error) {
	_, hostport, err := cli.ListenAddr(addr)
	return hostport, err
}

// exporter serves /metrics. Each scrape opens the database, reads the
// counters and closes it: a connection held open between scrapes would
// keep compaction and restore (which need the database to themselves)
// waiting. The previous reading is kept for the rates.
type exporter struct {
	opts *Options
	mu   sync.Mutex
	prev engine.DatabaseMetrics
}

func (e *exporter) read() (engine.DatabaseMetrics, error) {
	db, err := openDB(&e.opts.Globals)
	if err != nil {
		return engine.DatabaseMetrics{}, err
	}
	defer db.Close()
	return db.DatabaseMetrics()
}

func (e *exporter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/metrics" {
		if r.URL.Path == "/" {
			fmt.Fprintln(w, "sombra-info metrics exporter: see /metrics")
			return
		}
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	e.mu.Lock() // one scrape at a time: each needs the previous reading
	defer e.mu.Unlock()
	cur, err := e.read()
	if err != nil {
		// Prometheus marks the target down (up == 0) and keeps the reason.
		fmt.Fprintf(e.opts.IO.ErrOut, "sombra-info: scrape: %s\n", cli.Message(err))
		http.Error(w, cli.Message(err), http.StatusServiceUnavailable)
		return
	}
	report := engine.NewDatabaseReport(e.prev, cur)
	e.prev = cur
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(report.ToPrometheusFormat()))
}

// serveMetrics is --listen: the guide's monitoring exporter as one command.
func serveMetrics(opts *Options) error {
	addr, err := listenAddr(opts.Listen)
	if err != nil {
		return err
	}
	e := &exporter{opts: opts}
	// The first reading checks the database can be read at all (a wrong
	// path fails here, with its exit code, not at every scrape) and is
	// the base of the first scrape's rates.
	if e.prev, err = e.read(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	// On stderr: stdout stays clean, and a test listening on port 0
	// learns the port from it.
	fmt.Fprintf(opts.IO.ErrOut, "sombra-info: serving the metrics of %s at http://%s/metrics\n", opts.Globals.DB, ln.Addr())
	select {
	case err := <-done:
		return fmt.Errorf("--listen %s: %w", addr, err)
	case <-ctxOf(opts).Done():
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stopping the exporter: %w", err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "sombra-info: exporter stopped\n")
	return nil
}
