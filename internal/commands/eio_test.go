package commands_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sombradb/sombra/internal/commands/fixture"
)

// TestReadEIOIsNotCorruption runs the real tools under strace, failing
// one pread64 with EIO (a transient disk error; the file is intact) at
// points spread over the run. A read error is an I/O failure: sombra-repair
// (verify and --fix) exits 1, never 4 "CORRUPT", and --fix never counts it
// as fixed; sombra-health-check exits 3 "unknown", never 2 "unhealthy".
func TestReadEIOIsNotCorruption(t *testing.T) {
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("strace is not installed")
	}
	if out, err := exec.Command("strace", "-o", "/dev/null", "true").CombinedOutput(); err != nil {
		t.Skipf("strace cannot trace here: %v %s", err, out)
	}
	bin := binaries(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "x.db")
	fixture.Create(t, db, fixture.Default)
	sum := fixture.Sums(t, db)

	for _, tc := range []struct {
		name     string
		args     []string
		okCodes  map[int]bool // exit statuses allowed (the fault may miss)
		failCode int          // the status an I/O error must give
	}{
		{"verify", []string{"sombra-repair", "--db", db, "--json"}, map[int]bool{0: true}, 1},
		{"fix", []string{"sombra-repair", "--db", db, "--fix", "--json"}, map[int]bool{0: true}, 1},
		{"health-check", []string{"sombra-health-check", "--db", db, "--deep"}, map[int]bool{0: true}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tool := filepath.Join(bin, tc.args[0])
			// Count the tool's pread64 calls in a clean run.
			trace := filepath.Join(dir, tc.name+".trace")
			if out, err := exec.Command("strace", append([]string{"-f", "-y", "-o", trace, "-e", "trace=pread64", tool}, tc.args[1:]...)...).CombinedOutput(); err != nil {
				t.Fatalf("clean run: %v\n%s", err, out)
			}
			raw, err := os.ReadFile(trace)
			if err != nil {
				t.Fatal(err)
			}
			// The dynamic loader's reads come first; fail only the tool's.
			calls, first := 0, 0
			for _, l := range strings.Split(string(raw), "\n") {
				if strings.Contains(l, "pread64(") {
					calls++
					if first == 0 && strings.Contains(l, db) {
						first = calls
					}
				}
			}
			if first == 0 || calls-first < 10 {
				t.Fatalf("%d pread64 calls in a clean run, the first on %s is #%d", calls, db, first)
			}
			failed := 0
			for i := 0; i < 12; i++ {
				n := first + (calls-first)*i/11
				cmd := exec.Command("strace", append([]string{"-f", "-o", "/dev/null",
					"-e", "trace=pread64", "-e", fmt.Sprintf("inject=pread64:error=EIO:when=%d", n), tool}, tc.args[1:]...)...)
				cmd.Env = append(os.Environ(), "NO_COLOR=1")
				var stdout, stderr strings.Builder
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				code := 0
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				switch {
				case code == tc.failCode:
					failed++
					if tc.name != "health-check" && !strings.Contains(stderr.String(), "input/output error") {
						t.Errorf("EIO at pread64 #%d: exit %d without naming the I/O error:\n%s", n, code, stderr.String())
					}
				case tc.okCodes[code]:
					if tc.name == "fix" {
						var res struct {
							Success     bool `json:"success"`
							IssuesFound int  `json:"issues_found"`
							IssuesFixed int  `json:"issues_fixed"`
						}
						if err := json.Unmarshal([]byte(stdout.String()), &res); err != nil {
							t.Fatalf("EIO at pread64 #%d: %v\n%s", n, err, stdout.String())
						}
						if res.IssuesFound != 0 || res.IssuesFixed != 0 {
							t.Errorf("EIO at pread64 #%d: --fix reported %+v on an intact database", n, res)
						}
					}
				default:
					t.Errorf("EIO at pread64 #%d of %d: exit %d, want %d (or %v if the fault missed)\nstdout: %s\nstderr: %s",
						n, calls, code, tc.failCode, tc.okCodes, stdout.String(), stderr.String())
				}
			}
			if failed == 0 {
				t.Errorf("no injected EIO made %s fail", tc.name)
			}
			if got := fixture.Sums(t, db); got != sum {
				t.Errorf("the database changed")
			}
		})
	}
}
