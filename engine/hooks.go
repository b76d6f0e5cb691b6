package engine

// hooks.go holds optional extension points that engine sub-packages
// (debug, adaptive) and the memory-pressure monitor (resource.go) build on:
//
//   - OnClose: functions run when Close begins, so background goroutines
//     tied to a connection stop with it;
//   - SetTracer: a callback told about traced operations (commits);
//   - SetLogTap: a second slog handler that receives the engine's logs in
//     addition to Config.Logger (debug mode's detailed log file);
//   - GroupCommit: the group-commit setting last applied.
//
// Unused, each costs at most one atomic load on the path it sits on.

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/sombradb/sombra/engine/internal/pager"
)

// extensions is the per-connection state of the hooks (a field of DB).
type extensions struct {
	// closeHooks and nextHook are guarded by DB.mu.
	closeHooks map[uint64]func()
	nextHook   uint64

	tracer atomic.Pointer[Tracer]
	tap    atomic.Pointer[slog.Handler]
	group  atomic.Pointer[GroupCommitSettings]

	monitor atomic.Pointer[MemoryMonitor] // resource.go
}

// OnClose registers fn to run once when Close begins, before the final
// checkpoint and before the files are closed. Hooks run in reverse order of
// registration, on the goroutine calling Close; fn must not call Close.
// The returned cancel unregisters fn (it is a no-op once fn has run). On a
// closed connection OnClose returns ErrClosed and does not register fn.
func (db *DB) OnClose(fn func()) (cancel func(), err error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return func() {}, ErrClosed
	}
	if db.ext.closeHooks == nil {
		db.ext.closeHooks = map[uint64]func(){}
	}
	db.ext.nextHook++
	id := db.ext.nextHook
	db.ext.closeHooks[id] = fn
	return func() {
		db.mu.Lock()
		delete(db.ext.closeHooks, id)
		db.mu.Unlock()
	}, nil
}

// runCloseHooks is called by Close once db.closed is set, so no hook can
// be added after it took the list.
func (db *DB) runCloseHooks() {
	db.mu.Lock()
	hooks := db.ext.closeHooks
	db.ext.closeHooks = nil
	db.mu.Unlock()
	ids := make([]uint64, 0, len(hooks))
	for id := range hooks {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range slices.Backward(ids) {
		hooks[id]()
	}
}

// Tracer receives traced operations: op names what happened (see the
// Trace* constants) and attrs describe it. It is called synchronously on
// the goroutine that did the operation, so it must be fast and must not
// block on the database; a panic in it is recovered and logged.
type Tracer func(op string, attrs ...slog.Attr)

// Operations passed to a Tracer.
const (
	// TraceTransactionCommit is sent after every write transaction's
	// commit, with attrs lsn, pages (frames written) and duration, or
	// duration and err when the commit failed.
	TraceTransactionCommit = "transaction_commit"
)

// SetTracer installs t (nil removes the tracer).
func (db *DB) SetTracer(t Tracer) {
	if t == nil {
		db.ext.tracer.Store(nil)
		return
	}
	db.ext.tracer.Store(&t)
}

// Tracer returns the installed tracer, or nil.
func (db *DB) Tracer() Tracer {
	if t := db.ext.tracer.Load(); t != nil {
		return *t
	}
	return nil
}

// traceCommit is called by Tx.Commit right after the pager's commit.
func (db *DB) traceCommit(info pager.CommitInfo, d time.Duration, err error) {
	t := db.ext.tracer.Load()
	if t == nil {
		return
	}
	defer func() {
		if p := recover(); p != nil {
			db.log.Error("tracer panicked", "op", TraceTransactionCommit, "panic", p)
		}
	}()
	if err != nil {
		(*t)(TraceTransactionCommit, slog.Duration("duration", d), slog.String("err", err.Error()))
		return
	}
	(*t)(TraceTransactionCommit, slog.Uint64("lsn", uint64(info.LSN)), slog.Int("pages", info.Frames), slog.Duration("duration", d))
}

// SetLogTap installs h as a second destination for the engine's own logs
// (those sent to Config.Logger: transaction lifecycle, slow operations,
// corruption, checkpoints, resource alerts). Each record goes to
// Config.Logger as before and also to h if h is enabled for its level, so
// a tap at debug level sees debug records even when Config.Logger
// discards them. nil removes the tap. Logs of the page layer below the
// engine go to Config.Logger only.
func (db *DB) SetLogTap(h slog.Handler) {
	if h == nil {
		db.ext.tap.Store(nil)
		return
	}
	db.ext.tap.Store(&h)
}

// tappedLogger wraps the configured logger so that SetLogTap can add a
// destination at run time. Called once by open.
func (db *DB) tappedLogger(l *slog.Logger) *slog.Logger {
	return slog.New(&tapHandler{base: l.Handler(), tap: &db.ext.tap})
}

// tapHandler sends records to base and to the current tap. WithAttrs and
// WithGroup apply to base at once and are replayed on the tap per record
// (the tap can change at any time; the engine does not use them anyway).
type tapHandler struct {
	base slog.Handler
	tap  *atomic.Pointer[slog.Handler]
	ops  []func(slog.Handler) slog.Handler
}

func (h *tapHandler) tapped() slog.Handler {
	p := h.tap.Load()
	if p == nil {
		return nil
	}
	t := *p
	for _, op := range h.ops {
		t = op(t)
	}
	return t
}

func (h *tapHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if h.base.Enabled(ctx, l) {
		return true
	}
	p := h.tap.Load()
	return p != nil && (*p).Enabled(ctx, l)
}

func (h *tapHandler) Handle(ctx context.Context, r slog.Record) error {
	t := h.tapped()
	if t == nil || !t.Enabled(ctx, r.Level) {
		if !h.base.Enabled(ctx, r.Level) { // the tap went away since Enabled
			return nil
		}
		return h.base.Handle(ctx, r)
	}
	var errs []error
	if h.base.Enabled(ctx, r.Level) {
		errs = append(errs, h.base.Handle(ctx, r.Clone())) // the clone keeps the two handlers apart
	}
	errs = append(errs, t.Handle(ctx, r))
	return errors.Join(errs...)
}

func (h *tapHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	as = slices.Clone(as)
	return &tapHandler{base: h.base.WithAttrs(as), tap: h.tap,
		ops: append(slices.Clone(h.ops), func(t slog.Handler) slog.Handler { return t.WithAttrs(as) })}
}

func (h *tapHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &tapHandler{base: h.base.WithGroup(name), tap: h.tap,
		ops: append(slices.Clone(h.ops), func(t slog.Handler) slog.Handler { return t.WithGroup(name) })}
}

// GroupCommitSettings is the group-commit setting of a connection.
type GroupCommitSettings struct {
	Enabled  bool          `json:"enabled"`
	Interval time.Duration `json:"interval"`
	MaxTx    int           `json:"max_tx"`
}

// GroupCommit returns the setting last applied by EnableGroupCommit (off
// until it is called).
func (db *DB) GroupCommit() GroupCommitSettings {
	if g := db.ext.group.Load(); g != nil {
		return *g
	}
	return GroupCommitSettings{}
}

// noteGroupCommit is called by EnableGroupCommit with the values it applied.
func (db *DB) noteGroupCommit(interval time.Duration, maxTx int) {
	if interval <= 0 {
		db.ext.group.Store(&GroupCommitSettings{})
		return
	}
	db.ext.group.Store(&GroupCommitSettings{Enabled: true, Interval: interval, MaxTx: max(maxTx, 1)}) // the pager raises 0 to 1
}
