// Package progress lets a long engine operation (backup, verify, restore,
// compaction, integrity check, salvage, index rebuild, checkpoint wait)
// notice cancellation and report how far it has got, both at the
// granularity the operation steps it: a page, a 1 MiB chunk, a batch of
// records. Checking at that granularity is what keeps the time from a
// cancel to the operation's return well under a second whatever the file
// size.
package progress

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/sombradb/sombra/engine/internal/common"
)

// Func receives done and total units (bytes unless the operation says
// otherwise); total is 0 while unknown.
type Func = func(done, total int64)

// reportEvery throttles calls of the callback: a progress bar redraws at
// most ten times a second, and calling it per page would cost more than
// reading the page from the cache.
const reportEvery = 50 * time.Millisecond

// Tracker is one operation's view of its context and progress callback.
// The zero value and nil are usable: no cancellation, no reporting.
type Tracker struct {
	ctx   context.Context
	fn    Func
	done  int64
	total int64
	last  time.Time
}

// New returns a tracker for ctx (nil: never cancelled) reporting to fn
// (nil: nowhere) against total (0: unknown yet).
func New(ctx context.Context, fn Func, total int64) *Tracker {
	return &Tracker{ctx: ctx, fn: fn, total: total}
}

// SetTotal changes the total, e.g. once a first pass has counted the work.
func (t *Tracker) SetTotal(total int64) {
	if t != nil {
		t.total = total
	}
}

// Done returns the units counted so far.
func (t *Tracker) Done() int64 {
	if t == nil {
		return 0
	}
	return t.done
}

// Add counts n more units, reports them (throttled) and returns the
// context's error, wrapped, once it is cancelled. Operations call it per
// page or per batch and stop on a non-nil result.
func (t *Tracker) Add(n int64) error {
	if t == nil {
		return nil
	}
	t.done += n
	if t.fn != nil {
		if now := time.Now(); now.Sub(t.last) >= reportEvery {
			t.last = now
			t.fn(t.done, t.total)
		}
	}
	if d := stepDelay(); d > 0 {
		time.Sleep(d)
	}
	return t.Err()
}

// Err returns the context's error, wrapped, once it is cancelled; nil
// before. For loops that have nothing to count.
func (t *Tracker) Err() error {
	if t == nil {
		return nil
	}
	return Interrupted(t.ctx)
}

// Interrupted returns nil until ctx (nil: never) is cancelled, then an
// error saying so that wraps the cancellation's cause: for the tools'
// signal context "interrupt signal received", which matches
// context.Canceled as every cancellation does.
func Interrupted(ctx context.Context) error {
	if ctx == nil || ctx.Err() == nil {
		return nil
	}
	return fmt.Errorf("interrupted: %w", context.Cause(ctx))
}

// Finish reports the final count, unthrottled, so a bar ends at its total.
func (t *Tracker) Finish() {
	if t != nil && t.fn != nil {
		t.fn(t.done, t.total)
	}
}

// Context returns the tracker's context (context.Background when none).
func (t *Tracker) Context() context.Context {
	if t == nil || t.ctx == nil {
		return context.Background()
	}
	return t.ctx
}

// StepDelayEnv names a test-only hook: a duration (e.g. "2ms") slept at
// every step of every tracked operation, so that tests can send a real
// signal to a real process in the middle of an operation on a database
// small enough to build in a moment. Unset in production.
const StepDelayEnv = "SOMBRA_TEST_STEP_DELAY"

var stepDelay = sync.OnceValue(func() time.Duration {
	d, err := time.ParseDuration(os.Getenv(StepDelayEnv))
	if err != nil || d < 0 {
		return 0
	}
	return d
})

// PageReader is what the tree code reads pages through (btree.Reader).
type PageReader interface {
	Page(id common.PageID) ([]byte, error)
}

// Reader returns r with every page read counted as one unit by t (Add),
// so that a walk or scan written against a plain reader (a logical hash,
// a tree walk) stops at the next page once the context is cancelled: the
// read fails with the cancellation, and the cursor reports it.
func (t *Tracker) Reader(r PageReader) PageReader {
	if t == nil {
		return r
	}
	return checkedReader{r: r, t: t}
}

type checkedReader struct {
	r PageReader
	t *Tracker
}

func (c checkedReader) Page(id common.PageID) ([]byte, error) {
	if err := c.t.Add(1); err != nil {
		return nil, err
	}
	return c.r.Page(id)
}
