package cli

import (
	"context"
	"errors"
	"time"

	"github.com/sombradb/sombra/engine"
)

// Backoff bounds for Retry: quick enough to catch a short checkpoint, slow
// enough not to spin against a long-running writer.
const (
	retryMinDelay = 10 * time.Millisecond
	retryMaxDelay = 250 * time.Millisecond
)

// Retry implements --wait: it calls fn, and while fn fails with
// engine.ErrBusy and the wait budget lasts, sleeps (10ms doubling to 250ms)
// and calls it again. It returns fn's last error, so a timeout still says
// who holds the lock. wait <= 0 means one attempt. Cancelling ctx stops the
// waiting and returns the last error.
func Retry(ctx context.Context, wait time.Duration, fn func() error) error {
	deadline := time.Now().Add(wait)
	delay := retryMinDelay
	for {
		err := fn()
		if err == nil || !errors.Is(err, engine.ErrBusy) {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		t := time.NewTimer(min(delay, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(2*delay, retryMaxDelay)
	}
}
