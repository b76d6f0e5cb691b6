package engine

import (
	"log/slog"
	"sync"
	"time"
)

// slowLogEvery is the least time between two "slow operation" warnings of
// one connection. A long bulk job (a salvage of a big file, an import)
// makes every transaction slow; one line per transaction buried the
// output under hundreds of identical warnings.
const slowLogEvery = 10 * time.Second

// slowLog rate-limits the "slow operation" warnings: the first is logged,
// then at most one per slowLogEvery, carrying how many were left out since
// the previous one and the slowest of them; Close logs what is left.
type slowLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
	worst      time.Duration
}

// note logs (or counts) one slow operation of duration d; args are the
// operation's own attributes.
func (s *slowLog) note(log *slog.Logger, d time.Duration, args ...any) {
	now := time.Now()
	s.mu.Lock()
	if !s.last.IsZero() && now.Sub(s.last) < slowLogEvery {
		s.suppressed++
		s.worst = max(s.worst, d)
		s.mu.Unlock()
		return
	}
	n, worst := s.suppressed, s.worst
	s.last, s.suppressed, s.worst = now, 0, 0
	s.mu.Unlock()
	args = append(args, "duration_ms", d.Milliseconds())
	if n > 0 {
		args = append(args, "suppressed", n, "suppressed_max_ms", worst.Milliseconds())
	}
	log.Warn("slow operation", args...)
}

// flush logs the count of slow operations not yet reported.
func (s *slowLog) flush(log *slog.Logger) {
	s.mu.Lock()
	n, worst := s.suppressed, s.worst
	s.suppressed, s.worst = 0, 0
	s.mu.Unlock()
	if n > 0 {
		log.Warn("slow operations not logged one by one", "count", n, "max_ms", worst.Milliseconds())
	}
}
