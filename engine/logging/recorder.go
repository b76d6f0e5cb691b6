package logging

import (
	"context"
	"log/slog"
	"slices"
	"sync"
)

// Recorder is a slog.Handler that keeps records in memory: tests use it as
// Config.Logger to assert what the engine logged. Handlers derived with
// WithAttrs and WithGroup record into the same list, attributes added to
// the records (groups become "group.key" prefixes).
type Recorder struct {
	store  *recStore
	level  slog.Leveler
	attrs  []slog.Attr
	prefix string
}

type recStore struct {
	mu      sync.Mutex
	records []slog.Record
}

// NewRecorder returns a recorder keeping records at level and above (nil:
// every level, trace included).
func NewRecorder(level slog.Leveler) *Recorder {
	if level == nil {
		level = LevelTrace
	}
	return &Recorder{store: &recStore{}, level: level}
}

// Logger returns a logger writing to r.
func (r *Recorder) Logger() *slog.Logger { return slog.New(r) }

// Enabled implements slog.Handler.
func (r *Recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level.Level() }

// Handle implements slog.Handler.
func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, rec.Message, rec.PC)
	out.AddAttrs(r.attrs...)
	rec.Attrs(func(a slog.Attr) bool {
		if r.prefix != "" {
			a.Key = r.prefix + a.Key
		}
		out.AddAttrs(a)
		return true
	})
	r.store.mu.Lock()
	r.store.records = append(r.store.records, out)
	r.store.mu.Unlock()
	return nil
}

// WithAttrs implements slog.Handler.
func (r *Recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.attrs = slices.Clone(r.attrs)
	for _, a := range as {
		a.Key = r.prefix + a.Key
		c.attrs = append(c.attrs, a)
	}
	return &c
}

// WithGroup implements slog.Handler.
func (r *Recorder) WithGroup(name string) slog.Handler {
	if name == "" {
		return r
	}
	c := *r
	c.prefix = r.prefix + name + "."
	return &c
}

// Records returns a copy of the records kept so far.
func (r *Recorder) Records() []slog.Record {
	r.store.mu.Lock()
	defer r.store.mu.Unlock()
	out := make([]slog.Record, len(r.store.records))
	for i, rec := range r.store.records {
		out[i] = rec.Clone()
	}
	return out
}

// Find returns the records with message msg.
func (r *Recorder) Find(msg string) []slog.Record {
	var out []slog.Record
	for _, rec := range r.Records() {
		if rec.Message == msg {
			out = append(out, rec)
		}
	}
	return out
}

// Reset forgets the records kept so far.
func (r *Recorder) Reset() {
	r.store.mu.Lock()
	r.store.records = nil
	r.store.mu.Unlock()
}

// Attr returns the value of the attribute key of rec.
func Attr(rec slog.Record, key string) (slog.Value, bool) {
	var v slog.Value
	found := false
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v, found = a.Value.Resolve(), true
			return false
		}
		return true
	})
	return v, found
}
