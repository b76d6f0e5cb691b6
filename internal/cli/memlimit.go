package cli

import (
	"os"
	"runtime/debug"

	"github.com/sombradb/sombra/engine"
)

// heapHeadroom is the memory the tools allow themselves beyond the page
// cache: buffers, decoded records, the runtime.
const heapHeadroom = 48 << 20

// limitHeap sets the Go runtime's soft memory limit to the page cache
// budget (engine.CacheSizeEnv or the default) plus heapHeadroom. The
// engine's scans (backup, verify, compaction, integrity checks) keep their
// live data within the cache, but the cache churns page images, and with
// the default GOGC the heap would grow to twice the live data before a
// collection: this keeps the peak near the budget instead. A GOMEMLIMIT set
// by the operator wins.
func limitHeap() {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(engine.DefaultConfig().CacheSize + heapHeadroom)
}
