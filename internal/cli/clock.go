package cli

import (
	"sync"
	"time"
)

// Clock tells the time. Commands keep one in their options struct so golden
// tests can print repeatable times and durations; the zero value (nil) is
// the real clock.
type Clock func() time.Time

// Now returns the current time from c, or time.Now when c is nil.
func (c Clock) Now() time.Time {
	if c == nil {
		return time.Now()
	}
	return c()
}

// Since is time.Since measured on c.
func (c Clock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// FixedClock returns a clock that starts at t and advances by step on every
// call, so a command that prints "took X" prints step every time.
func FixedClock(t time.Time, step time.Duration) Clock {
	var mu sync.Mutex
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now := t
		t = t.Add(step)
		return now
	}
}
