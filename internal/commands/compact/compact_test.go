package compact_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/cli/clitest"
	"github.com/sombradb/sombra/internal/commands/compact"
	"github.com/sombradb/sombra/internal/commands/fixture"
)

var t0 = time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC)

func build(s cli.IOStreams) *cobra.Command {
	return compact.NewCmd(&compact.Options{IO: s, Clock: cli.FixedClock(t0, 250*time.Millisecond)}, nil)
}

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return clitest.RunCommand(t, build, args...)
}

func newDB(t *testing.T, spec fixture.Spec) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "app.db")
	fixture.Create(t, path, spec)
	return dir, path
}

func logicalHash(t *testing.T, path string) string {
	t.Helper()
	db, err := engine.OpenWithConfig(path, engine.Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h, err := db.LogicalHash()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"analyze", []string{"--analyze"}},
		{"skipped", []string{"--threshold", "90"}}, // above the ~85% a compaction would reclaim
		{"compacted", nil},
		{"threshold-compacted", []string{"--threshold", "20"}},
	} {
		for _, js := range []bool{false, true} {
			dir, path := newDB(t, fixture.Fragmented)
			args := append([]string{"--db", path}, tc.args...)
			golden := "testdata/" + tc.name + ".golden"
			if js {
				args = append(args, "--json")
				golden = "testdata/" + tc.name + ".json.golden"
			}
			out, errOut, code := run(t, args...)
			if code != 0 || errOut != "" {
				t.Fatalf("%v: code=%d stderr=%q", args, code, errOut)
			}
			clitest.Golden(t, golden, []byte(fixture.Scrub(out, dir)))
		}
	}
}

func TestReadOnlyModes(t *testing.T) {
	_, path := newDB(t, fixture.Fragmented)
	before := fixture.Sums(t, path)
	for _, args := range [][]string{{"--analyze"}, {"--analyze", "--json"}, {"--threshold", "90"}, {"--threshold", "90", "--json"}} {
		if _, errOut, code := run(t, append([]string{"--db", path}, args...)...); code != 0 {
			t.Fatalf("%v: code=%d stderr=%q", args, code, errOut)
		}
		if fixture.Sums(t, path) != before {
			t.Fatalf("%v changed the database", args)
		}
	}
}

func TestCompactKeepsData(t *testing.T) {
	_, path := newDB(t, fixture.Fragmented)
	want := logicalHash(t, path)
	st, _ := os.Stat(path)
	out, errOut, code := run(t, "--db", path, "--json")
	if code != 0 {
		t.Fatalf("code=%d stderr=%q", code, errOut)
	}
	var res compact.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	c := res.Compaction
	if res.Action != "compacted" || c == nil || c.BytesReclaimed <= 0 || after.Size() != c.SizeAfter || st.Size() != c.SizeBefore {
		t.Fatalf("result %+v; size %d -> %d", res, st.Size(), after.Size())
	}
	if got := logicalHash(t, path); got != want {
		t.Errorf("logical hash changed: %s -> %s", want, got)
	}
	// Compacting again finds nothing to reclaim.
	out, _, _ = run(t, "--db", path, "--analyze", "--json")
	json.Unmarshal([]byte(out), &res)
	if res.Analysis.FreePages != 0 {
		t.Errorf("free pages after compaction: %+v", res.Analysis)
	}
}

// TestBusy: compaction refuses while another connection has the database
// open, naming the process, and leaves the files alone; with --wait it
// proceeds once the other connection closes.
func TestBusy(t *testing.T) {
	_, path := newDB(t, fixture.Fragmented)
	other, err := engine.OpenWithConfig(path, engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	before := fixture.Sums(t, path)
	out, errOut, code := run(t, "--db", path)
	if code != 3 || out != "" || !strings.Contains(errOut, "database is locked") ||
		!strings.Contains(errOut, fmt.Sprintf("pid %d", os.Getpid())) || strings.Count(errOut, "\n") != 1 {
		t.Errorf("code=%d stdout=%q stderr=%q", code, out, errOut)
	}
	if fixture.Sums(t, path) != before {
		t.Error("a refused compaction changed the files")
	}

	go func() {
		time.Sleep(300 * time.Millisecond)
		other.Close()
	}()
	if _, errOut, code := run(t, "--db", path, "--wait", "10s"); code != 0 {
		t.Errorf("with --wait: code=%d stderr=%q", code, errOut)
	}
}

func TestErrors(t *testing.T) {
	dir, path := newDB(t, fixture.Fragmented)
	notDB := filepath.Join(dir, "notes.txt")
	fixture.MustWrite(t, notDB, []byte(strings.Repeat("not a database\n", 500)))
	corruptHeader := filepath.Join(dir, "header.db")
	fixture.Create(t, corruptHeader, fixture.Fragmented)
	fixture.CorruptPage(t, corruptHeader, 0, 4096)
	corruptPage := filepath.Join(dir, "page.db")
	fixture.Create(t, corruptPage, fixture.Fragmented)
	fixture.CorruptPage(t, corruptPage, 3, 4096)
	missing := filepath.Join(dir, "nope.db")

	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"missing file", []string{"--db", missing}, 1, "nope.db: no such file"},
		{"not a database", []string{"--db", notDB}, 1, "not a sombra database"},
		{"corrupt header", []string{"--db", corruptHeader}, 4, "corrupt page 0"},
		{"corrupt page", []string{"--db", corruptPage}, 4, "corrupt page 3"},
		{"unknown flag", []string{"--db", path, "--vacuum"}, 2, "unknown flag: --vacuum"},
		{"bad threshold", []string{"--db", path, "--threshold", "150"}, 2, "--threshold 150: want a percentage from 0 to 100"},
		{"threshold not a number", []string{"--db", path, "--threshold", "high"}, 2, `invalid argument "high" for "--threshold"`},
		{"analyze and threshold", []string{"--db", path, "--analyze", "--threshold", "5"}, 2, "none of the others can be"},
		{"no --db", nil, 2, "--db is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sums := map[string]string{}
			for _, p := range []string{path, notDB, corruptHeader, corruptPage} {
				sums[p] = fixture.Sums(t, p)
			}
			out, errOut, code := run(t, tt.args...)
			if code != tt.code || out != "" || !strings.Contains(errOut, tt.stderr) {
				t.Errorf("code=%d (want %d) stdout=%q stderr=%q (want %q)", code, tt.code, out, errOut, tt.stderr)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "sombra-compact: ") {
				t.Errorf("want one line starting with the tool name, got %q", errOut)
			}
			for p, s := range sums {
				if fixture.Sums(t, p) != s {
					t.Errorf("%s changed", p)
				}
			}
		})
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Error("compact created a missing database")
	}
}

// TestProgressOnTerminal: a progress bar on stderr only when it is a
// terminal (and not under --json or --quiet).
func TestProgressOnTerminal(t *testing.T) {
	// A bar is hidden for its first 200 ms; this compaction is faster.
	hold := cli.FirstReading
	cli.FirstReading = 0
	t.Cleanup(func() { cli.FirstReading = hold })
	for _, tc := range []struct {
		args []string
		bar  bool
	}{{nil, true}, {[]string{"--json"}, false}, {[]string{"--quiet"}, false}} {
		// Enough live pages for progress callbacks before the last one.
		_, path := newDB(t, fixture.Spec{Nodes: 8000, Edges: 8000, Seed: 3, KeepEvery: 2, Checkpoint: "truncate"})
		s, _, _, errOut := cli.Test()
		s.ErrIsTTY = true
		if code := cli.Run(build(s), append([]string{"--db", path}, tc.args...)); code != 0 {
			t.Fatalf("%v: code %d: %s", tc.args, code, errOut)
		}
		if got := strings.Contains(errOut.String(), "compacting"); got != tc.bar {
			t.Errorf("%v: progress bar shown=%v, want %v: %q", tc.args, got, tc.bar, errOut)
		}
	}
}

// TestDryRun (issue 12 #18): --dry-run says a compaction would run and how
// much it would reclaim, honours --threshold, and changes no byte or mtime
// of the database directory; the real compaction then does what it said.
func TestDryRun(t *testing.T) {
	dir, path := newDB(t, fixture.Fragmented)
	run(t, "--db", path, "--analyze") // the first open may create -shm
	before := fixture.DirState(t, dir)
	out, errOut, code := run(t, "--db", path, "--dry-run", "--json")
	var res compact.Result
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("code=%d out=%s stderr=%s", code, out, errOut)
	}
	if !res.DryRun || res.Action != compact.ActionWouldCompact || res.Compaction != nil || res.Analysis.EstimatedReclaimableBytes <= 0 {
		t.Errorf("dry run: %+v", res)
	}
	if out, _, code := run(t, "--db", path, "--dry-run"); code != 0 || !strings.Contains(out, "dry run: compaction would rewrite") {
		t.Errorf("human dry run: code=%d\n%s", code, out)
	}
	if out, _, code := run(t, "--db", path, "--dry-run", "--threshold", "99", "--json"); code != 0 ||
		!strings.Contains(out, `"action": "skipped"`) || !strings.Contains(out, `"dry_run": true`) {
		t.Errorf("dry run above the threshold: code=%d\n%s", code, out)
	}
	if after := fixture.DirState(t, dir); after != before {
		t.Errorf("--dry-run changed the directory:\nbefore\n%s\nafter\n%s", before, after)
	}
	if _, _, code := run(t, "--db", path, "--dry-run", "--analyze"); code != 2 {
		t.Errorf("--dry-run with --analyze: code %d, want 2", code)
	}
	out, _, _ = run(t, "--db", path, "--json")
	var real compact.Result
	if json.Unmarshal([]byte(out), &real) != nil || real.Action != compact.ActionCompacted || real.DryRun || real.Compaction.BytesReclaimed <= 0 {
		t.Errorf("real compaction after the dry run: %s", out)
	}
}
