package checkpoint_test

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
	"github.com/sombradb/sombra/internal/commands/checkpoint"
	"github.com/sombradb/sombra/internal/commands/fixture"
)

var t0 = time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC)

func build(s cli.IOStreams) *cobra.Command {
	return checkpoint.NewCmd(&checkpoint.Options{IO: s, Clock: cli.FixedClock(t0, 1500*time.Microsecond)}, nil)
}

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return clitest.RunCommand(t, build, args...)
}

// pending builds the default fixture and commits n more transactions
// through a connection that stays open (closing it would checkpoint), so
// the WAL holds frames not yet in the database file.
func pending(t *testing.T, n int) (dir, path string, w *engine.DB) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "app.db")
	fixture.Create(t, path, fixture.Default)
	w, err := engine.OpenWithConfig(path, engine.Config{WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	for i := 0; i < n; i++ {
		err := w.Update(func(tx *engine.Tx) error {
			_, err := tx.CreateNode("Batch", engine.Properties{"i": engine.IntValue(int64(i))})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir, path, w
}

func TestGolden(t *testing.T) {
	for _, mode := range []string{"passive", "full", "restart", "truncate"} {
		for _, js := range []bool{false, true} {
			dir, path, _ := pending(t, 3)
			args := []string{"--db", path, "--mode", mode}
			golden := "testdata/" + mode + ".golden"
			if js {
				args = append(args, "--json")
				golden = "testdata/" + mode + ".json.golden"
			}
			out, errOut, code := run(t, args...)
			if code != 0 || errOut != "" {
				t.Fatalf("%v: code=%d stderr=%q", args, code, errOut)
			}
			clitest.Golden(t, golden, []byte(fixture.Scrub(out, dir)))
		}
	}
}

func TestDefaultModeIsPassive(t *testing.T) {
	_, path, _ := pending(t, 2)
	out, _, code := run(t, "--db", path, "--json")
	var res checkpoint.Result
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Mode != "passive" || res.PagesWritten == 0 {
		t.Fatalf("code=%d out=%s", code, out)
	}
}

func TestStatus(t *testing.T) {
	dir, path, _ := pending(t, 3)
	before := fixture.Sums(t, path)
	for _, js := range []bool{false, true} {
		args := []string{"--db", path, "--status"}
		golden := "testdata/status.golden"
		if js {
			args = append(args, "--json")
			golden = "testdata/status.json.golden"
		}
		out, errOut, code := run(t, args...)
		if code != 0 || errOut != "" {
			t.Fatalf("code=%d stderr=%q", code, errOut)
		}
		clitest.Golden(t, golden, []byte(fixture.Scrub(out, dir)))
	}
	if fixture.Sums(t, path) != before {
		t.Error("--status changed the database or its WAL")
	}
	// After a truncate checkpoint nothing is pending.
	if _, _, code := run(t, "--db", path, "--mode", "truncate"); code != 0 {
		t.Fatal("truncate failed")
	}
	out, _, _ := run(t, "--db", path, "--status", "--json")
	var st checkpoint.StatusResult
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.CheckpointPending || st.WALSize != 0 || st.LastCheckpoint == nil {
		t.Errorf("status after truncate: %s", out)
	}
}

func TestTruncateEmptiesWAL(t *testing.T) {
	_, path, _ := pending(t, 3)
	if _, _, code := run(t, "--db", path, "--mode", "truncate"); code != 0 {
		t.Fatal("truncate failed")
	}
	if st, err := os.Stat(path + "-wal"); err != nil || st.Size() != 0 {
		t.Errorf("WAL after truncate: %v %v", st, err)
	}
}

// TestBusy: another connection holds the writer lock. A full checkpoint
// gives up after --wait with exit 3 and names the holder; nothing changes.
func TestBusy(t *testing.T) {
	_, path, w := pending(t, 0)
	tx, err := w.BeginTransaction()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.CreateNode("Uncommitted", nil); err != nil {
		t.Fatal(err)
	}
	before := fixture.Sums(t, path)
	for _, mode := range []string{"full", "restart", "truncate"} {
		start := time.Now()
		out, errOut, code := run(t, "--db", path, "--mode", mode, "--wait", "100ms")
		took := time.Since(start)
		want := fmt.Sprintf("database is locked (writer lock held by pid %d (checkpoint.test))", os.Getpid())
		if code != 3 || out != "" || !strings.Contains(errOut, want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%s: code=%d stdout=%q stderr=%q", mode, code, out, errOut)
		}
		if took > 3*time.Second {
			t.Errorf("%s: took %v with --wait 100ms", mode, took)
		}
		_, errOut, code = run(t, "--db", path, "--mode", mode, "--wait", "100ms", "--json")
		var doc struct {
			Error struct {
				Code int    `json:"code"`
				Kind string `json:"kind"`
			} `json:"error"`
		}
		if code != 3 || json.Unmarshal([]byte(errOut), &doc) != nil || doc.Error.Kind != "busy" || doc.Error.Code != 3 {
			t.Errorf("%s --json: code=%d stderr=%q", mode, code, errOut)
		}
	}
	if fixture.Sums(t, path) != before {
		t.Error("a failed checkpoint changed the files")
	}
	// passive never waits for the writer
	if _, errOut, code := run(t, "--db", path, "--mode", "passive", "--wait", "100ms"); code != 0 {
		t.Errorf("passive with writer active: code=%d stderr=%q", code, errOut)
	}
}

// TestBlockedByReaders: a reader of an old snapshot keeps frames back. A
// passive checkpoint says so and succeeds; a full one times out with 3.
func TestBlockedByReaders(t *testing.T) {
	_, path, w := pending(t, 0)
	r, err := engine.OpenWithConfig(path, engine.Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rtx, err := r.BeginReadTransaction()
	if err != nil {
		t.Fatal(err)
	}
	defer rtx.Rollback()
	// Frames committed after the reader began.
	for i := 0; i < 2; i++ {
		if err := w.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("Later", nil); return err }); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code := run(t, "--db", path, "--mode", "passive", "--json")
	var res checkpoint.Result
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || !res.BlockedByReaders || res.FramesCheckpointed >= res.WALFrames {
		t.Errorf("passive under reader: code=%d out=%s stderr=%q", code, out, errOut)
	}
	_, errOut, code = run(t, "--db", path, "--mode", "full", "--wait", "100ms")
	if code != 3 || !strings.Contains(errOut, fmt.Sprintf("reader lock held by pid %d", os.Getpid())) {
		t.Errorf("full under reader: code=%d stderr=%q", code, errOut)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	fixture.Create(t, path, fixture.Default)
	notDB := filepath.Join(dir, "notes.txt")
	fixture.MustWrite(t, notDB, []byte(strings.Repeat("not a database\n", 500)))
	corrupt := filepath.Join(dir, "corrupt.db")
	fixture.Create(t, corrupt, fixture.Default)
	fixture.CorruptPage(t, corrupt, 0, 4096)
	missing := filepath.Join(dir, "nope.db")

	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"missing file", []string{"--db", missing, "--mode", "full"}, 1, "nope.db: no such file"},
		{"missing file status", []string{"--db", missing, "--status"}, 1, "nope.db: no such file"},
		{"not a database", []string{"--db", notDB, "--mode", "full"}, 1, "not a sombra database"},
		{"corrupt header", []string{"--db", corrupt, "--mode", "full"}, 4, "corrupt page 0"},
		{"bad mode", []string{"--db", path, "--mode", "fast"}, 2, `invalid argument "fast" for "--mode" flag: must be one of passive|full|restart|truncate`},
		{"unknown flag", []string{"--db", path, "--force"}, 2, "unknown flag: --force"},
		{"status and mode", []string{"--db", path, "--status", "--mode", "full"}, 2, "none of the others can be"},
		{"no --db", []string{"--mode", "full"}, 2, "--db is required"},
		{"bad wait", []string{"--db", path, "--wait", "soon"}, 2, "not a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sums := map[string]string{}
			for _, p := range []string{path, notDB, corrupt} {
				sums[p] = fixture.Sums(t, p)
			}
			out, errOut, code := run(t, tt.args...)
			if code != tt.code || out != "" || !strings.Contains(errOut, tt.stderr) {
				t.Errorf("code=%d (want %d) stdout=%q stderr=%q (want %q)", code, tt.code, out, errOut, tt.stderr)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "sombra-checkpoint: ") {
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
		t.Error("checkpoint created a missing database")
	}
}
