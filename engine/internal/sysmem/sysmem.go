// Package sysmem reads what the operating system says about memory: the
// process's resident set and the limit it runs under. The engine's memory
// monitor and its metrics use them; they are not part of the engine's API.
package sysmem

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
)

// Limit returns the memory the process may use: the Go soft
// memory limit if set, else the cgroup limit, else physical memory (0 if
// none can be read). The cgroup and physical figures are read once per
// process (GetPerformanceMetrics calls this on every call).
func Limit() int64 {
	if l := debug.SetMemoryLimit(-1); l > 0 && l < math.MaxInt64 {
		return l
	}
	return hostMemoryLimit()
}

var hostMemoryLimit = sync.OnceValue(func() int64 {
	if l := cgroupMemoryLimit(); l > 0 {
		return l
	}
	return physicalMemory()
})

// ProcessRSS returns the process's resident memory in bytes: from
// /proc/self/statm where it exists, else the memory the Go runtime has
// mapped and not released (which misses memory allocated outside Go).
func ProcessRSS() int64 {
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 2 {
			if pages, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				return pages * int64(os.Getpagesize())
			}
		}
	}
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64() - s[1].Value.Uint64())
}

// cgroupMemoryLimit reads the cgroup v2 (or v1) memory limit of this
// process; 0 when there is none or it cannot be read.
func cgroupMemoryLimit() int64 {
	var paths []string
	if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "0::"); ok {
				paths = append(paths, "/sys/fs/cgroup"+strings.TrimSuffix(rest, "/")+"/memory.max")
			}
		}
	}
	paths = append(paths, "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
		if err != nil || v <= 0 || v >= 1<<60 { // "max", or v1's "unlimited" sentinel
			continue
		}
		return v
	}
	return 0
}

func physicalMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			fs := strings.Fields(rest)
			if len(fs) >= 1 {
				if kb, err := strconv.ParseInt(fs[0], 10, 64); err == nil {
					return kb * 1024
				}
			}
		}
	}
	return 0
}
