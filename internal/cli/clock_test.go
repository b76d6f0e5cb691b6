package cli

import (
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	var real Clock
	if d := time.Since(real.Now()); d < 0 || d > time.Minute {
		t.Errorf("nil clock is not the real clock: off by %v", d)
	}
	t0 := time.Date(2024, 1, 15, 12, 30, 0, 0, time.UTC)
	c := FixedClock(t0, 2*time.Second)
	start := c.Now()
	if !start.Equal(t0) {
		t.Errorf("first Now = %v, want %v", start, t0)
	}
	if d := c.Since(start); d != 2*time.Second {
		t.Errorf("Since = %v, want 2s", d)
	}
}
