package cli

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
)

// busyFor returns an fn that fails with a wrapped busy error n times.
func busyFor(n int, calls *int) func() error {
	return func() error {
		*calls++
		if *calls <= n {
			return fmt.Errorf("open: %w", &engine.BusyError{Path: "a.db", What: engine.LockExclusive, PID: 7})
		}
		return nil
	}
}

func TestRetryNoWait(t *testing.T) {
	calls := 0
	err := Retry(context.Background(), 0, busyFor(1, &calls))
	if !errors.Is(err, engine.ErrBusy) || calls != 1 {
		t.Errorf("err=%v calls=%d, want busy after 1 call", err, calls)
	}
}

func TestRetryUntilFree(t *testing.T) {
	calls := 0
	if err := Retry(context.Background(), 5*time.Second, busyFor(3, &calls)); err != nil || calls != 4 {
		t.Errorf("err=%v calls=%d, want success on call 4", err, calls)
	}
}

func TestRetryBudgetRunsOut(t *testing.T) {
	calls := 0
	start := time.Now()
	err := Retry(context.Background(), 60*time.Millisecond, busyFor(1000, &calls))
	elapsed := time.Since(start)
	var be *engine.BusyError
	if !errors.As(err, &be) || be.PID != 7 {
		t.Errorf("err = %v, want the last busy error", err)
	}
	// 10+20+30(capped by the budget) ms: first call, three sleeps, and a
	// last try at the deadline.
	if elapsed < 60*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("gave up after %v, want about 60ms", elapsed)
	}
	if calls < 3 || calls > 6 {
		t.Errorf("calls = %d, want about 4", calls)
	}
}

func TestRetryOtherError(t *testing.T) {
	calls := 0
	want := fmt.Errorf("x.db: %w", engine.ErrNotADatabase)
	err := Retry(context.Background(), time.Second, func() error { calls++; return want })
	if err != want || calls != 1 {
		t.Errorf("err=%v calls=%d, want immediate return", err, calls)
	}
}

func TestRetryCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	done := make(chan error)
	go func() { done <- Retry(ctx, time.Hour, busyFor(1<<30, &calls)) }()
	time.Sleep(30 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, engine.ErrBusy) {
			t.Errorf("err = %v, want the busy error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Retry ignored cancellation")
	}
}
