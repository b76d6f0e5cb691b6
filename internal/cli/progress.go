package cli

import (
	"time"

	"github.com/schollz/progressbar/v3"
)

// Progress reports bytes processed by a long operation.
type Progress interface {
	Add64(n int64)
	Finish()
}

// NewProgress returns a progress bar on s.ErrOut counting bytes up to total
// (-1 when unknown: a spinner). Bars are for people: in a pipe, under cron,
// --quiet or --json it returns a Progress that does nothing.
func NewProgress(s IOStreams, g *Globals, total int64, description string) Progress {
	if !s.ErrIsTTY || g.Quiet || g.JSON {
		return nopProgress{}
	}
	return &barProgress{bar: progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(s.ErrOut),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionUseANSICodes(true),
		progressbar.OptionSetPredictTime(true),
		// The result follows on stdout; leave no half-line behind.
		progressbar.OptionClearOnFinish(),
	)}
}

type nopProgress struct{}

func (nopProgress) Add64(int64) {}
func (nopProgress) Finish()     {}

type barProgress struct{ bar *progressbar.ProgressBar }

// Errors from the bar are write errors on stderr; the operation itself must
// not fail because a progress line could not be drawn.
func (p *barProgress) Add64(n int64) { _ = p.bar.Add64(n) }
func (p *barProgress) Finish()       { _ = p.bar.Finish() }
