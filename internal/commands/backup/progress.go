package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sombradb/sombra/engine"
	bk "github.com/sombradb/sombra/engine/backup"
	"github.com/sombradb/sombra/internal/cli"
)

// progressInterval is how often the progress bar looks at the backup.
const progressInterval = 100 * time.Millisecond

// startProgress shows a progress bar (bytes written and rate) while a
// backup to path runs, and returns the function that ends it. engine/backup
// has no progress callback, so the bar follows the size of the backup's
// temporary file (PATH.tmp-PID-N, written front to back) instead. The total
// is known for a full backup (every page plus header and trailer); an
// incremental backup gets a spinner with the byte count. Off a terminal,
// under --quiet or --json, it does nothing.
func startProgress(opts *Options, db *engine.DB, path string, full bool) func() {
	g := &opts.Globals
	if !opts.IO.ErrIsTTY || g.Quiet || g.JSON {
		return func() {}
	}
	total := int64(-1)
	if full {
		if in, err := db.Info(); err == nil {
			total = int64(in.PageCount)*int64(in.PageSize+16) + bk.HeaderSize + bk.TrailerSize
		}
	}
	bar := cli.NewProgress(opts.IO, g, total, "backup "+filepath.Base(path))
	pattern := fmt.Sprintf("%s.tmp-%d-*", path, os.Getpid())
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		var seen int64
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			m, _ := filepath.Glob(pattern)
			for _, f := range m {
				if st, err := os.Stat(f); err == nil && st.Size() > seen {
					bar.Add64(st.Size() - seen)
					seen = st.Size()
				}
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		bar.Finish()
	}
}

// writable reports whether this process may create files in dir.
func writable(dir string) bool {
	return unix.Access(dir, unix.W_OK) == nil
}
