package cli

import (
	"time"

	"github.com/schollz/progressbar/v3"
)

// FirstReading is how long a bar stays hidden after it starts. A rate over
// the first few milliseconds is noise ("2.0 TB/s" after one cached chunk),
// and an operation this short needs no bar anyway. A variable only so that
// command tests can see the bar of an operation that fast.
var FirstReading = 200 * time.Millisecond

// ShowsProgress reports whether progress bars are drawn: on a terminal,
// without --quiet or --json.
func ShowsProgress(s IOStreams, g *Globals) bool { return s.ErrIsTTY && !g.Quiet && !g.JSON }

// ProgressFunc returns a callback for an engine operation's Progress
// option (bytes done and total, total 0 while unknown) that draws a bar on
// s.ErrOut, and the function that ends the bar, to call before the result
// is printed (or the error). Bars are for people: in a pipe, under cron,
// --quiet or --json it draws nothing, and the callback is nil, so the
// engine does not even call it.
func ProgressFunc(s IOStreams, g *Globals, description string) (func(done, total int64), func()) {
	if !ShowsProgress(s, g) {
		return nil, func() {}
	}
	b := newBar(s, description, time.Now)
	return b.update, b.finish
}

// CountProgressFunc is ProgressFunc for an operation that counts things
// other than bytes (records written): the bar shows the count and a rate
// in unit per second.
func CountProgressFunc(s IOStreams, g *Globals, description, unit string) (func(done, total int64), func()) {
	if !ShowsProgress(s, g) {
		return nil, func() {}
	}
	b := newBar(s, description, time.Now)
	b.unit = unit
	return b.update, b.finish
}

// bar draws (done, total) readings: in IEC units (MiB, MiB/s) like every
// size the tools print, hidden for FirstReading, then throttled to ten
// redraws a second. Errors from the bar are write errors on stderr; the
// operation must not fail because a progress line could not be drawn.
type bar struct {
	s     IOStreams
	desc  string
	now   func() time.Time
	unit  string // "" for bytes
	pb    *progressbar.ProgressBar
	start time.Time
	total int64
}

func newBar(s IOStreams, description string, now func() time.Time) *bar {
	return &bar{s: s, desc: description, now: now}
}

func (b *bar) update(done, total int64) {
	if total <= 0 {
		total = -1 // unknown: a spinner with the byte count
	}
	if b.pb == nil {
		units := []progressbar.Option{progressbar.OptionShowBytes(true), progressbar.OptionUseIECUnits(true)}
		if b.unit != "" {
			units = []progressbar.Option{progressbar.OptionShowIts(), progressbar.OptionSetItsString(b.unit)}
		}
		b.pb = progressbar.NewOptions64(total, append(units,
			progressbar.OptionSetWriter(b.s.ErrOut),
			progressbar.OptionSetDescription(b.desc),
			progressbar.OptionShowCount(),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionUseANSICodes(true),
			progressbar.OptionSetPredictTime(true),
			// No spinner goroutine redrawing on its own (before the first
			// reading is due, and after an operation that never finished
			// its bar): redraws follow readings.
			progressbar.OptionSetSpinnerChangeInterval(0),
			// The result follows on stdout; leave no half-line behind.
			progressbar.OptionClearOnFinish(),
		)...)
		// The rate is bytes over time since now, not since the first
		// redraw (which would make the first reading absurd).
		b.pb.StartWithoutRender()
		b.start, b.total = b.now(), total
	}
	if b.now().Sub(b.start) < FirstReading {
		return // Set64 below catches up with the whole count later
	}
	if total != b.total {
		b.total = total
		b.pb.ChangeMax64(total)
	}
	if total > 0 && done > total {
		done = total // the bar refuses more than its total
	}
	_ = b.pb.Set64(done)
}

func (b *bar) finish() {
	if b.pb != nil && b.now().Sub(b.start) >= FirstReading {
		_ = b.pb.Finish()
	}
}
