// Command opsbench measures Sombra's operator tools against their physical
// limits and SQLite (issues 3 and 4 of the benchmark plan):
//
//	opsbench sqlite-load -nodes N -edges M -out DIR      SQLite copy of gendata's graph
//	opsbench tools   -bin BIN -db DB                     sombra-info / sombra-health-check wall time
//	opsbench backup  -bin BIN -db DB -sqlite S -work W   full backup vs cp+sync vs SQLite backup API,
//	                                                     incremental after ~1% of pages changed, restore
//	opsbench pitr    -bin BIN -work W                    WAL archiving + point-in-time replay rate
//	opsbench compact -bin BIN -db DB -sqlite S -work W   delete 30%, sombra-compact vs SQLite VACUUM
//	opsbench memory  -bin BIN -db DB -work W -cache 32M  peak RSS of backup, verify, integrity
//	                                                     check, compaction (salvage with -salvage)
//	                                                     against the cache + 96 MiB
//
// BIN is a directory holding the repository's binaries
// (go build -o BIN ./cmd/... in the main module). The Sombra database is
// made with scripts/gendata; the SQLite one with sqlite-load from the same
// generator, spec and seed, so both hold the same logical graph (node id
// i+1 is generated node i in both).
//
// Every external command is printed before its series ("$ ..."), with the
// load average, so figures can be reproduced and judged.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "sqlite-load":
		err = cmdSQLiteLoad(os.Args[2:])
	case "tools":
		err = cmdTools(os.Args[2:])
	case "backup":
		err = cmdBackup(os.Args[2:])
	case "pitr":
		err = cmdPITR(os.Args[2:])
	case "compact":
		err = cmdCompact(os.Args[2:])
	case "memory":
		err = cmdMemory(os.Args[2:])
	case "sqlite-backup-child":
		err = cmdSQLiteBackupChild(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "opsbench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: opsbench sqlite-load|tools|backup|pitr|compact|memory [flags] (-h for flags)")
	os.Exit(2)
}

// loadavg returns the 1, 5 and 15 minute load averages as uptime prints them.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], ", ")
}

func logf(format string, args ...any) { fmt.Printf(format+"\n", args...) }

// header prints the series title, the load and the command.
func header(title string, argv []string) {
	logf("\n## %s   [load %s, %s]", title, loadavg(), time.Now().Format("15:04:05"))
	if argv != nil {
		logf("$ %s", shellJoin(argv))
	}
}

func shellJoin(argv []string) string {
	var parts []string
	for _, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\"'$*?|&;<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// run is one finished external command.
type run struct {
	wall      time.Duration
	maxRSSKiB int64
	stdout    []byte
	exit      int
}

// runCmd runs argv and measures its wall time and peak RSS (ru_maxrss of
// the child, what /usr/bin/time -v reports). okExit lists exit statuses
// that are not failures (0 always is).
func runCmd(argv []string, okExit ...int) (run, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	t0 := time.Now()
	err := cmd.Run()
	r := run{wall: time.Since(t0), stdout: out.Bytes()}
	if cmd.ProcessState != nil {
		r.exit = cmd.ProcessState.ExitCode()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.maxRSSKiB = ru.Maxrss
		}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && slices.Contains(okExit, r.exit) {
		err = nil
	}
	if err != nil {
		return r, fmt.Errorf("%s: %v: %s", shellJoin(argv), err, strings.TrimSpace(errb.String()))
	}
	return r, nil
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// dropFileCache evicts path's pages from the OS page cache (only this
// file's: POSIX_FADV_DONTNEED on clean pages), for cold-cache runs.
func dropFileCache(paths ...string) error {
	for _, p := range paths {
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		err = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// stats summarises a series of durations.
type stats struct {
	n                      int
	min, median, mean, max time.Duration
}

func summarize(ds []time.Duration) stats {
	if len(ds) == 0 {
		return stats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{n: len(s), min: s[0], median: med, mean: sum / time.Duration(len(s)), max: s[len(s)-1]}
}

func (s stats) String() string {
	return fmt.Sprintf("median %s  min %s  max %s  (n=%d)", ms(s.median), ms(s.min), ms(s.max), s.n)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func mibps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / (1 << 20) / d.Seconds()
}

func metNot(ok bool) string {
	if ok {
		return "MET"
	}
	return "NOT MET"
}

func tool(bin, name string) string { return filepath.Join(bin, name) }

func decodeJSON(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %q: %w", truncate(string(b), 200), err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func mustDir(dir string) error {
	if dir == "" {
		return errors.New("-work is required")
	}
	return os.MkdirAll(dir, 0o755)
}

// walSize returns the size of path's WAL file (0 when there is none).
func walSize(path string) int64 { return fileSize(path + "-wal") }
