package shm

import (
	"sync/atomic"
	"time"
)

// The counters region holds database-wide activity counters that every
// connection of every process adds to (like SQLite's WAL index, but for
// metrics). It lives in the mapped data part, far past the coordination
// fields so that they can grow without moving it:
//
//	[2048:2056] layout version of the region (CountersVersion); 0 until the
//	            first connection to open the database has initialised it
//	[2056:2064] when the counters were last reset (Unix ns)
//	[2064+8i]   counter i (see the Ctr constants), then the commit-latency
//	            histogram: one word per bucket of LatencyBounds plus +Inf
//	            (counts per bucket, not cumulative)
//
// The counters are reset only by the first connection to open the database
// (the one that finds nobody else has it open, see ResetCounters), so they
// cover everything done since the database was last closed by everyone. A
// connection that finds another version in the region (a process of another
// build initialised it) neither adds to it nor reads it: CountersState says
// why.
const (
	offCounters = 2048
	// CountersVersion is the layout version of the counters region.
	CountersVersion = 1
	offCtrReset     = offCounters + 8
	offCtr0         = offCounters + 16
)

// Counter indexes.
const (
	CtrCommits            = iota // write transactions committed
	CtrCommitFailures            // commits that failed
	CtrRollbacks                 // write transactions rolled back
	CtrReadTx                    // read transactions begun
	CtrWriteOps                  // write operations (creates, updates, deletes)
	CtrWALFrames                 // frames written to the WAL (commits and spills)
	CtrWALBytes                  // bytes written to the WAL
	CtrCheckpoints               // checkpoints completed
	CtrCheckpointNanos           // time spent in completed checkpoints
	CtrCheckpointPages           // pages copied into the database file by checkpoints
	CtrCacheHits                 // page cache hits, summed over connections
	CtrCacheMisses               // page cache misses, summed over connections
	CtrBusyWaits                 // lock requests that found the lock held and waited
	CtrBusyWaitNanos             // time spent waiting for those locks
	CtrBusyTimeouts              // waits that gave up (a busy error)
	CtrCommitLatencyNanos        // sum of commit latencies
	NumCounters
)

// LatencyBounds are the upper bounds, in seconds, of the commit-latency
// histogram's buckets (a last bucket, +Inf, takes the rest).
var LatencyBounds = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

const (
	offBuckets   = offCtr0 + 8*NumCounters
	numBuckets   = len(LatencyBounds) + 1
	countersEnd  = offBuckets + 8*numBuckets
	_            = uint(mapSize - countersEnd)  // the region must fit in the mapping
	_            = uint(offCounters - dataSize) // and not overlap the coordination fields
	nanosPerSecf = float64(time.Second)
)

// CountersSnapshot is one reading of the counters region.
type CountersSnapshot struct {
	Reset    time.Time
	Counters [NumCounters]uint64
	Buckets  [numBuckets]uint64 // per bucket of LatencyBounds, then +Inf
}

// ResetCounters zeroes the counters region and stamps it with this
// layout's version. Only the first connection to open the database calls
// it (it holds the open lock exclusively, so no one else is counting).
// The version is stored last: a reader that sees it sees zeroed counters.
func (s *File) ResetCounters(now time.Time) {
	atomic.StoreUint64(s.word(offCounters), 0)
	for off := int64(offCtrReset); off < int64(countersEnd); off += 8 {
		atomic.StoreUint64(s.word(off), 0)
	}
	atomic.StoreUint64(s.word(offCtrReset), uint64(now.UnixNano()))
	atomic.StoreUint64(s.word(offCounters), CountersVersion)
	s.counting = s.Shared()
}

// AttachCounters decides whether this connection counts into the region:
// only if the file is shared with the other connections and has this
// build's layout. It returns the version found.
func (s *File) AttachCounters() uint64 {
	v := atomic.LoadUint64(s.word(offCounters))
	s.counting = s.Shared() && v == CountersVersion
	return v
}

// Shared reports whether s is the coordination file every connection maps.
// A stand-in kept in one connection's own memory (a read-only connection
// that cannot use the file) has no open file: its counters would be that
// connection's alone, so it must not pass them off as the database's.
func (s *File) Shared() bool { return s != nil && s.f != nil && s.mem != nil }

// Counting reports whether the counters region is usable. It is false for
// a nil File (a connection without a coordination file).
func (s *File) Counting() bool { return s != nil && s.counting }

// CountersVersionFound returns the version word of the region.
func (s *File) CountersVersionFound() uint64 { return atomic.LoadUint64(s.word(offCounters)) }

// Add adds n to counter c. It does nothing when the region is not usable,
// so that increment points need no checks.
func (s *File) Add(c int, n uint64) {
	if s == nil || !s.counting || n == 0 {
		return
	}
	atomic.AddUint64(s.word(offCtr0+8*int64(c)), n)
}

// ObserveCommit records one commit's latency in the histogram and the sum.
func (s *File) ObserveCommit(d time.Duration) {
	if s == nil || !s.counting {
		return
	}
	sec := float64(d) / nanosPerSecf
	i := 0
	for i < len(LatencyBounds) && sec > LatencyBounds[i] {
		i++
	}
	atomic.AddUint64(s.word(offBuckets+8*int64(i)), 1)
	atomic.AddUint64(s.word(offCtr0+8*CtrCommitLatencyNanos), uint64(max(d, 0)))
}

// ReadCounters returns the counters. Each word is read atomically; the
// whole is not one instant (no lock is taken), which only matters to a
// reader comparing counters updated by the same event a few nanoseconds
// apart. ok is false when the region is not usable.
func (s *File) ReadCounters() (snap CountersSnapshot, ok bool) {
	if !s.Counting() || atomic.LoadUint64(s.word(offCounters)) != CountersVersion {
		return snap, false
	}
	snap.Reset = time.Unix(0, int64(atomic.LoadUint64(s.word(offCtrReset))))
	for i := range snap.Counters {
		snap.Counters[i] = atomic.LoadUint64(s.word(offCtr0 + 8*int64(i)))
	}
	for i := range snap.Buckets {
		snap.Buckets[i] = atomic.LoadUint64(s.word(offBuckets + 8*int64(i)))
	}
	return snap, true
}
