// Package debug is the guide's DebugMode: operation tracing, a detailed
// log file and CPU/heap profiling for troubleshooting a live connection.
//
// What can be traced (TraceOperations):
//
//   - "transaction_commit": every write transaction's commit, one event
//     each, from the engine's tracer hook (DB.SetTracer): lsn, pages
//     (frames written) and duration, or duration and err for a failed
//     commit.
//   - "page_read": sampled, not per page. The page layer has no per-read
//     hook, so a goroutine reads the page cache counters every sample
//     interval (100ms by default) and emits one event per interval in which
//     pages were read: from_disk (cache misses: pages read from the database
//     file or the WAL) and from_cache (cache hits).
//
// Traced events are kept in memory (Events, the latest 1000; Counts) and
// logged at debug level with message "trace" to the detailed log when it
// is enabled, otherwise to the database's Config.Logger.
//
// EnableDetailedLogging writes debug-level JSON to a file: the traced
// events and every log record of the engine (transaction begin, commit and
// rollback, checkpoints, slow operations, corruption, resource alerts),
// through the engine's log tap (DB.SetLogTap), whatever the level of
// Config.Logger.
//
// StartProfiling and StopProfiling take a CPU profile (runtime/pprof) over
// the interval and a heap profile at its end, both written to temporary
// files in the pprof format, and summarise them (Profile.Summary).
package debug

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/handle"
)

// Traceable operations.
const (
	OpTransactionCommit = engine.TraceTransactionCommit
	OpPageRead          = "page_read"
)

// Operations lists what TraceOperations accepts.
var Operations = []string{OpTransactionCommit, OpPageRead}

// DefaultSampleInterval is how often page reads are sampled.
const DefaultSampleInterval = 100 * time.Millisecond

const maxEvents = 1000

// ErrAlreadyEnabled is returned by Enable when the database already has a
// tracer (another DebugMode, or one installed with DB.SetTracer).
var ErrAlreadyEnabled = errors.New("a tracer is already installed on this database")

// Event is one traced operation.
type Event struct {
	Time  time.Time   `json:"time"`
	Op    string      `json:"op"`
	Attrs []slog.Attr `json:"attrs"`
}

// Attr returns the value of the event's attribute key.
func (e Event) Attr(key string) (slog.Value, bool) {
	for _, a := range e.Attrs {
		if a.Key == key {
			return a.Value, true
		}
	}
	return slog.Value{}, false
}

// DebugMode is debugging switched on for one connection. Its methods are
// safe for concurrent use.
type DebugMode struct {
	db *engine.DB

	mu       sync.Mutex
	disabled bool
	traced   map[string]bool
	events   []Event // ring of the latest maxEvents
	next     int
	counts   map[string]uint64

	sampleEvery time.Duration
	sampler     *sampler
	lastHits    uint64
	lastMisses  uint64

	logFile  *os.File
	logPath  string
	detailed *slog.Logger

	prof   *profiling
	unhook func()
}

type sampler struct {
	stop, done chan struct{}
}

// Enable switches debug mode on for db: it installs the engine tracer (no
// operation is traced until TraceOperations). It fails with
// ErrAlreadyEnabled if db has a tracer already. Debug mode ends with
// Disable or when the database closes.
func Enable(db *engine.DB) (*DebugMode, error) {
	if db == nil {
		return nil, fmt.Errorf("debug mode: nil database: %w", engine.ErrInvalid)
	}
	if db.Tracer() != nil {
		return nil, fmt.Errorf("debug mode: %w", ErrAlreadyEnabled)
	}
	d := &DebugMode{db: db, traced: map[string]bool{}, counts: map[string]uint64{}, sampleEvery: DefaultSampleInterval}
	unhook, err := db.OnClose(func() { d.disable(false) })
	if err != nil {
		return nil, fmt.Errorf("debug mode: %w", err)
	}
	d.unhook = unhook
	db.SetTracer(d.trace)
	db.Config().Logger.Info("debug mode enabled", "path", db.Path())
	return d, nil
}

// TraceOperations sets the operations traced (replacing the previous set;
// an empty list traces nothing). Unknown names fail with engine.ErrInvalid
// and change nothing.
func (d *DebugMode) TraceOperations(ops []string) error {
	set := map[string]bool{}
	for _, op := range ops {
		if !slices.Contains(Operations, op) {
			return fmt.Errorf("trace operation %q (want one of %s): %w", op, strings.Join(Operations, ", "), engine.ErrInvalid)
		}
		set[op] = true
	}
	d.mu.Lock()
	if d.disabled {
		d.mu.Unlock()
		return errDisabled
	}
	d.traced = set
	var stop *sampler
	switch {
	case set[OpPageRead] && d.sampler == nil:
		d.startSamplerLocked()
	case !set[OpPageRead] && d.sampler != nil:
		stop, d.sampler = d.sampler, nil
	}
	d.mu.Unlock()
	if stop != nil {
		close(stop.stop)
		<-stop.done
	}
	return nil
}

var errDisabled = errors.New("debug mode is disabled")

// Traced returns the traced operations, sorted.
func (d *DebugMode) Traced() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.traced))
	for op := range d.traced {
		out = append(out, op)
	}
	sort.Strings(out)
	return out
}

// SetSampleInterval sets how often page reads are sampled (default
// 100ms); it applies from the next time page_read tracing starts.
func (d *DebugMode) SetSampleInterval(every time.Duration) error {
	if every <= 0 {
		return fmt.Errorf("sample interval %v: %w", every, engine.ErrInvalid)
	}
	d.mu.Lock()
	d.sampleEvery = every
	d.mu.Unlock()
	return nil
}

func (d *DebugMode) startSamplerLocked() {
	cs := handle.Pager(d.db).CacheStats()
	d.lastHits, d.lastMisses = cs.Hits, cs.Misses
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	d.sampler = s
	every := d.sampleEvery
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				d.SamplePageReads()
			}
		}
	}()
}

// SamplePageReads takes one page_read sample now (what the sampler does
// every interval) and returns the event, if pages were read since the
// previous sample and page_read is traced.
func (d *DebugMode) SamplePageReads() (Event, bool) {
	cs := handle.Pager(d.db).CacheStats()
	d.mu.Lock()
	if !d.traced[OpPageRead] {
		d.mu.Unlock()
		return Event{}, false
	}
	hits, misses := cs.Hits-d.lastHits, cs.Misses-d.lastMisses
	d.lastHits, d.lastMisses = cs.Hits, cs.Misses
	d.mu.Unlock()
	if hits == 0 && misses == 0 {
		return Event{}, false
	}
	return d.emit(OpPageRead, []slog.Attr{slog.Uint64("from_disk", misses), slog.Uint64("from_cache", hits)})
}

// trace is the engine tracer.
func (d *DebugMode) trace(op string, attrs ...slog.Attr) { d.emit(op, attrs) }

func (d *DebugMode) emit(op string, attrs []slog.Attr) (Event, bool) {
	d.mu.Lock()
	if d.disabled || !d.traced[op] {
		d.mu.Unlock()
		return Event{}, false
	}
	ev := Event{Time: time.Now(), Op: op, Attrs: slices.Clone(attrs)}
	if len(d.events) < maxEvents {
		d.events = append(d.events, ev)
	} else {
		d.events[d.next] = ev
		d.next = (d.next + 1) % maxEvents
	}
	d.counts[op]++
	log := d.detailed
	d.mu.Unlock()
	if log == nil {
		log = d.db.Config().Logger
	}
	log.LogAttrs(context.Background(), slog.LevelDebug, "trace", append([]slog.Attr{slog.String("op", op)}, attrs...)...)
	return ev, true
}

// Events returns the latest traced events (at most 1000), oldest first.
func (d *DebugMode) Events() []Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Event, 0, len(d.events))
	out = append(out, d.events[d.next:]...)
	return append(out, d.events[:d.next]...)
}

// Counts returns how many events of each operation were traced.
func (d *DebugMode) Counts() map[string]uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]uint64, len(d.counts))
	for k, v := range d.counts {
		out[k] = v
	}
	return out
}

// EnableDetailedLogging appends debug-level JSON logs to the file at path
// (created 0644): traced events and all of the engine's own log records.
// Calling it again switches to the new file.
func (d *DebugMode) EnableDetailedLogging(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("detailed logging: %w", err)
	}
	h := slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})
	d.mu.Lock()
	if d.disabled {
		d.mu.Unlock()
		f.Close()
		return errDisabled
	}
	old := d.logFile
	d.logFile, d.logPath, d.detailed = f, path, slog.New(h)
	d.db.SetLogTap(h)
	d.mu.Unlock()
	if old != nil {
		old.Close()
	}
	d.detailed.Info("detailed logging enabled", "db", d.db.Path())
	return nil
}

// DetailedLogPath returns the detailed log's path ("" when off).
func (d *DebugMode) DetailedLogPath() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logPath
}

// DisableDetailedLogging stops writing the detailed log and closes it.
func (d *DebugMode) DisableDetailedLogging() error {
	d.mu.Lock()
	f := d.logFile
	if f != nil {
		d.db.SetLogTap(nil)
	}
	d.logFile, d.logPath, d.detailed = nil, "", nil
	d.mu.Unlock()
	if f == nil {
		return nil
	}
	return f.Close()
}

// Disable switches debug mode off: tracing stops, the detailed log is
// closed and a running profile is stopped (its files are removed).
func (d *DebugMode) Disable() error { return d.disable(true) }

func (d *DebugMode) disable(unhook bool) error {
	d.mu.Lock()
	if d.disabled {
		d.mu.Unlock()
		return nil
	}
	d.disabled = true
	s := d.sampler
	d.sampler = nil
	d.mu.Unlock()
	if unhook {
		d.unhook()
	}
	d.db.SetTracer(nil)
	if s != nil {
		close(s.stop)
		<-s.done
	}
	err := d.DisableDetailedLogging()
	if p := d.takeProfiling(); p != nil {
		p.abort()
	}
	return err
}
