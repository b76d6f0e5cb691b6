package backup_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/cli/clitest"
	"github.com/sombradb/sombra/internal/commands/backup"
	"github.com/sombradb/sombra/internal/commands/fixture"
)

var t0 = time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC)

// build is the command under test with a fixed clock: backups are stamped
// t0, t0+250ms, ... in call order.
func build(s cli.IOStreams) *cobra.Command {
	return backup.NewCmd(&backup.Options{IO: s, Clock: cli.FixedClock(t0, 250*time.Millisecond)}, nil)
}

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return clitest.RunCommand(t, build, args...)
}

// runAt runs args with the clock starting at start.
func runAt(t *testing.T, start time.Time, args ...string) (string, string, int) {
	t.Helper()
	return clitest.RunCommand(t, func(s cli.IOStreams) *cobra.Command {
		return backup.NewCmd(&backup.Options{IO: s, Clock: cli.FixedClock(start, 250*time.Millisecond)}, nil)
	}, args...)
}

// ok runs args and fails the test unless the command succeeds quietly on
// stderr.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := run(t, args...)
	if code != 0 || errOut != "" {
		t.Fatalf("%v: code=%d stderr=%q", args, code, errOut)
	}
	return out
}

// newDB builds the default fixture in a fresh directory.
func newDB(t *testing.T) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "app.db")
	fixture.Create(t, path, fixture.Default)
	return dir, path
}

// addNodes commits n more nodes to the database at path (and closes it,
// which checkpoints).
func addNodes(t *testing.T, path string, n int) {
	t.Helper()
	db, err := engine.OpenWithConfig(path, engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *engine.Tx) error {
		for i := 0; i < n; i++ {
			if _, err := tx.CreateNode("Added", engine.Properties{"i": engine.IntValue(int64(i))}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var (
	fileIDRE   = regexp.MustCompile(`("db_file_id": ")[0-9a-f]{16}(")`)
	durationRE = regexp.MustCompile(`("(duration_ms|throughput_bytes_per_sec)": )[0-9.e+]+`)
	humanDurRE = regexp.MustCompile(`(?m)^(duration|throughput)\t.*$`)
)

// scrub makes output repeatable: the temporary directory, times, file
// ids (random per database) and durations (wall time spent in the engine
// varies with the machine) are masked.
func scrub(s, dir string) string {
	s = fixture.Scrub(s, dir)
	s = fileIDRE.ReplaceAllString(s, "${1}<FILEID>${2}")
	s = durationRE.ReplaceAllString(s, "${1}<N>")
	return humanDurRE.ReplaceAllString(s, "$1\t<N>")
}

func TestGolden(t *testing.T) {
	dir, path := newDB(t)
	bdir := filepath.Join(dir, "backups")
	full := filepath.Join(bdir, "full_20250115_120000")
	out := ok(t, "--type", "full", "--db", path, "--output", full, "--json")
	clitest.Golden(t, "testdata/full.json.golden", []byte(scrub(out, dir)))

	addNodes(t, path, 20)
	out = ok(t, "--type", "incremental", "--db", path, "--output", filepath.Join(bdir, "inc_20250116_120000"))
	clitest.Golden(t, "testdata/incremental.golden", []byte(scrub(out, dir)))

	addNodes(t, path, 5)
	out = ok(t, "--type", "incremental", "--db", path, "--output", filepath.Join(bdir, "inc_20250117_120000.backup"), "--json")
	clitest.Golden(t, "testdata/incremental.json.golden", []byte(scrub(out, dir)))

	out = ok(t, "verify", filepath.Join(bdir, "inc_20250116_120000.backup"), "--json")
	clitest.Golden(t, "testdata/verify.json.golden", []byte(scrub(out, dir)))
	out = ok(t, "verify", "--dir", bdir, "full_20250115_120000")
	clitest.Golden(t, "testdata/verify.golden", []byte(scrub(out, dir)))

	out = ok(t, "list", "--dir", bdir)
	clitest.Golden(t, "testdata/list.golden", []byte(scrub(out, dir)))
	out = ok(t, "list", "--dir", bdir, "--json")
	clitest.Golden(t, "testdata/list.json.golden", []byte(scrub(out, dir)))

	// On a terminal: a table (colour off with --no-color).
	s, _, tty, _ := cli.Test()
	s.IsTTY = true
	if code := cli.Run(build(s), []string{"list", "--dir", bdir, "--no-color"}); code != 0 {
		t.Fatalf("list on a TTY: code %d", code)
	}
	clitest.Golden(t, "testdata/list.tty.golden", []byte(scrub(tty.String(), dir)))

	// Restore the newest backup and compare with the database.
	target := filepath.Join(dir, "restored.db")
	out = ok(t, "restore", "--dir", bdir, "--db", target, "--json")
	clitest.Golden(t, "testdata/restore.json.golden", []byte(scrub(out, dir)))
	if a, b := logicalHash(t, path), logicalHash(t, target); a != b {
		t.Errorf("restored database differs: %s, original %s", b, a)
	}
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

// TestJSONFields pins the documented field names of the backup document
// (the golden files pin the values).
func TestJSONFields(t *testing.T) {
	dir, path := newDB(t)
	out := ok(t, "--type", "full", "--db", path, "--output", filepath.Join(dir, "b", "full"), "--json")
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema_version", "name", "path", "db", "created_at", "type", "file_size", "pages_copied", "base_lsn", "end_lsn",
		"parent", "change_source", "duration_ms", "throughput_bytes_per_sec"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("backup --json lacks %q", k)
		}
	}
	if doc["schema_version"] != 2.0 || doc["type"] != "full" || doc["parent"] != nil || doc["path"] != filepath.Join(dir, "b", "full.backup") {
		t.Errorf("document %v", doc)
	}
}

// TestSourceUnchanged: backups only read the database file and its WAL,
// also while another connection has frames in the WAL.
func TestSourceUnchanged(t *testing.T) {
	dir, path := newDB(t)
	w, err := engine.OpenWithConfig(path, engine.Config{WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("InWAL", nil); return err }); err != nil {
		t.Fatal(err)
	}
	before := fixture.Sums(t, path)
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(dir, "b", "full"))
	if err := w.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("InWAL", nil); return err }); err != nil {
		t.Fatal(err)
	}
	before2 := fixture.Sums(t, path)
	if before2 == before {
		t.Fatal("the second commit changed nothing")
	}
	out := ok(t, "--type", "incremental", "--db", path, "--output", filepath.Join(dir, "b", "inc"), "--json")
	if fixture.Sums(t, path) != before2 {
		t.Error("a backup changed the database or its WAL")
	}
	var r backup.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.PagesCopied == 0 || r.Parent == nil || *r.Parent != "full" {
		t.Errorf("incremental: %s", out)
	}
	ok(t, "verify", filepath.Join(dir, "b", "inc.backup"))
}

// TestDeprecatedAliases: the old names of --db (--input, the operations
// guide's, and restore's --to) still work, print one deprecation line on
// stderr (none under --json or --quiet), are hidden from the help, and
// disagreeing with --db is a usage error.
func TestDeprecatedAliases(t *testing.T) {
	dir, path := newDB(t)
	b := func(s cli.IOStreams) *cobra.Command { return backup.NewCommand(s) }
	_, errOut, code := clitest.RunCommand(t, b, "--type", "full", "--input", path, "--output", filepath.Join(dir, "b", "viainput"))
	if code != 0 || errOut != "sombra-backup: --input is deprecated; use --db\n" {
		t.Errorf("--input: code=%d stderr=%q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "b", "viainput.backup")); err != nil {
		t.Errorf("--input took no backup: %v", err)
	}
	for _, extra := range []string{"--json", "--quiet"} {
		_, errOut, code = clitest.RunCommand(t, b, "--type", "full", "--input", path, "--output", filepath.Join(dir, "b", "x"+extra), extra)
		if code != 0 || errOut != "" {
			t.Errorf("--input %s: code=%d stderr=%q (want nothing)", extra, code, errOut)
		}
	}
	if _, errOut, code := run(t, "--type", "full", "--db", path, "--input", path, "--output", filepath.Join(dir, "b", "both")); code != 0 {
		t.Errorf("--db and --input the same: code=%d stderr=%q", code, errOut)
	}
	_, errOut, code = run(t, "--type", "full", "--db", path, "--input", filepath.Join(dir, "other.db"), "--output", filepath.Join(dir, "b", "x"))
	if code != 2 || !strings.Contains(errOut, "name different files") {
		t.Errorf("--db and --input disagreeing: code=%d stderr=%q", code, errOut)
	}
	restored := filepath.Join(dir, "r.db")
	_, errOut, code = clitest.RunCommand(t, b, "restore", "--dir", filepath.Join(dir, "b"), "--name", "viainput", "--to", restored)
	if code != 0 || errOut != "sombra-backup: --to is deprecated; use --db\n" {
		t.Errorf("restore --to: code=%d stderr=%q", code, errOut)
	}
	if _, err := os.Stat(restored); err != nil {
		t.Errorf("restore --to restored nothing: %v", err)
	}
	for _, args := range [][]string{{"--help"}, {"restore", "--help"}, {"archive-wal", "--help"}, {"schedule", "--help"}} {
		out := ok(t, args...)
		flags := out[strings.Index(out, "Flags:"):]
		if !strings.Contains(flags, "--db PATH") || strings.Contains(flags, "--input") || strings.Contains(flags, "--to ") {
			t.Errorf("%v: want --db shown and no --input/--to:\n%s", args, out)
		}
	}
}

// TestParse checks flag parsing apart from running.
func TestParse(t *testing.T) {
	var got *backup.Options
	b := func(s cli.IOStreams) *cobra.Command {
		return backup.NewCmd(&backup.Options{IO: s}, func(o *backup.Options) error { got = o; return nil })
	}
	if _, errOut, code := clitest.RunCommand(t, b, "--type", "incremental", "--db", "x.db", "--output", "b/inc",
		"--base", "full", "--force", "--no-hash", "--wait", "2s"); code != 0 {
		t.Fatalf("code %d: %s", code, errOut)
	}
	if got.Type != "incremental" || got.Globals.DB != "x.db" || got.Output != "b/inc" || got.Base != "full" || !got.Force ||
		!got.NoHash || got.Globals.Wait != 2*time.Second {
		t.Errorf("parsed %+v", got)
	}
}

// TestBadInput: each failure is one line naming the file and the problem,
// with the documented exit code, and writes nothing.
func TestBadInput(t *testing.T) {
	dir, path := newDB(t)
	notDB := filepath.Join(dir, "notes.txt")
	fixture.MustWrite(t, notDB, []byte(strings.Repeat("not a database\n", 500)))
	plain := filepath.Join(dir, "file")
	fixture.MustWrite(t, plain, []byte("a regular file"))
	junk := filepath.Join(dir, "junk", "x.backup")
	if err := os.Mkdir(filepath.Dir(junk), 0o755); err != nil {
		t.Fatal(err)
	}
	fixture.MustWrite(t, junk, []byte(strings.Repeat("not a backup either\n", 100)))
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	bdir := filepath.Join(dir, "b")
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full"))

	tests := []struct {
		name   string
		args   []string
		code   int
		stderr []string
	}{
		{"not a database", []string{"--type", "full", "--db", notDB, "--output", filepath.Join(dir, "new", "x")}, 1,
			[]string{"notes.txt", "not a sombra database"}},
		{"missing input", []string{"--type", "full", "--db", filepath.Join(dir, "nope.db"), "--output", filepath.Join(dir, "new", "x")}, 1,
			[]string{"nope.db: no such file"}},
		{"output exists", []string{"--type", "full", "--db", path, "--output", filepath.Join(bdir, "full")}, 1,
			[]string{"full.backup: backup already exists (use --force to overwrite)"}},
		{"output under a file", []string{"--type", "full", "--db", path, "--output", filepath.Join(plain, "sub", "out")}, 1,
			[]string{plain + " is a file, not a directory"}},
		{"output is a directory", []string{"--type", "full", "--db", path, "--output", bdir}, 2,
			[]string{"is a directory: give a backup file name"}},
		{"incremental, empty dir", []string{"--type", "incremental", "--db", path, "--output", filepath.Join(empty, "inc")}, 1,
			[]string{empty, "no full backup", "--type full"}},
		{"incremental, no dir", []string{"--type", "incremental", "--db", path, "--output", filepath.Join(dir, "new", "inc")}, 1,
			[]string{filepath.Join(dir, "new"), "no full backup", "--type full"}},
		{"incremental, missing base", []string{"--type", "incremental", "--db", path, "--output", filepath.Join(bdir, "inc"), "--base", "nosuch"}, 1,
			[]string{"base backup nosuch not found", "--type full"}},
		{"bad type", []string{"--type", "differential", "--db", path, "--output", filepath.Join(bdir, "x")}, 2,
			[]string{`invalid argument "differential" for "--type" flag: must be one of full|incremental`}},
		{"no type", []string{"--db", path, "--output", filepath.Join(bdir, "x")}, 2, []string{`required flag(s) "type" not set`}},
		{"no input", []string{"--type", "full", "--output", filepath.Join(bdir, "x")}, 2, []string{"--db is required"}},
		{"unknown flag", []string{"--type", "full", "--db", path, "--output", filepath.Join(bdir, "x"), "--compress"}, 2,
			[]string{"unknown flag: --compress"}},
		{"unknown command", []string{"lst"}, 2, []string{`unknown command "lst"`}},
		{"list: no dir flag", []string{"list"}, 2, []string{`required flag(s) "dir" not set`}},
		{"list: missing dir", []string{"list", "--dir", filepath.Join(dir, "nope")}, 1, []string{"nope: no such backup directory"}},
		{"verify: no argument", []string{"verify"}, 2, []string{"no backup given: --dir DIR --name NAME"}},
		{"verify: name and argument", []string{"verify", "--dir", bdir, "--name", "full", "full"}, 2, []string{"not both"}},
		{"verify: missing", []string{"verify", filepath.Join(bdir, "nosuch.backup")}, 1, []string{"nosuch.backup: not found"}},
		{"verify: not a backup", []string{"verify", junk}, 1, []string{junk + ": not a sombra backup"}},
		{"restore: bad until", []string{"restore", "--dir", bdir, "--db", filepath.Join(dir, "r.db"), "--until", "yesterday"}, 2,
			[]string{`--until "yesterday": not an RFC 3339 time`}},
		{"restore: name and until", []string{"restore", "--dir", bdir, "--db", filepath.Join(dir, "r.db"), "--name", "full", "--until", "2025-01-01T00:00:00Z"}, 2,
			[]string{"none of the others can be"}},
		{"restore: target exists", []string{"restore", "--dir", bdir, "--db", path}, 1,
			[]string{"app.db: restore target already exists (use --force to overwrite)"}},
		{"restore: no dir", []string{"restore", "--db", filepath.Join(dir, "r.db")}, 2, []string{"--dir is required"}},
		{"restore: empty dir", []string{"restore", "--dir", empty, "--db", filepath.Join(dir, "r.db")}, 1, []string{"holds no backups"}},
		{"prune: no keep", []string{"prune", "--dir", bdir}, 2, []string{"[keep-days keep-full] is required"}},
		{"prune: zero", []string{"prune", "--dir", bdir, "--keep-days", "0"}, 2, []string{"would delete every backup"}},
		{"prune: negative", []string{"prune", "--dir", bdir, "--keep-full", "-1"}, 2, []string{"must not be negative"}},
		{"schedule: bad spec", []string{"schedule", "--db", path, "--dir", bdir, "--full", "every sunday"}, 2,
			[]string{`--full "every sunday": not a cron spec`}},
		{"schedule: nothing", []string{"schedule", "--db", path, "--dir", bdir}, 2, []string{"give --full SPEC and/or --incremental SPEC"}},
		{"schedule: not a database", []string{"schedule", "--db", notDB, "--dir", bdir, "--full", "@daily"}, 1, []string{"not a sombra database"}},
		{"archive-wal: both", []string{"archive-wal", "--db", path, "--dir", bdir, "--enable", "--disable"}, 2, []string{"none of the others can be"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tree(t, dir)
			out, errOut, code := run(t, tt.args...)
			bad := code != tt.code || out != ""
			for _, s := range tt.stderr {
				bad = bad || !strings.Contains(errOut, s)
			}
			if bad {
				t.Errorf("code=%d (want %d) stdout=%q stderr=%q (want %q)", code, tt.code, out, errOut, tt.stderr)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "sombra-backup: ") {
				t.Errorf("want one line starting with the tool name, got %q", errOut)
			}
			if after := tree(t, dir); after != before {
				t.Errorf("files changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			// The same failure under --json is one JSON object on stderr
			// carrying the exit code.
			_, errOut, code = run(t, append(tt.args, "--json")...)
			var doc struct {
				SchemaVersion int `json:"schema_version"`
				Error         struct {
					Message string `json:"message"`
					Code    int    `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(errOut), &doc); err != nil || doc.Error.Code != tt.code || code != tt.code || doc.SchemaVersion != 1 {
				t.Errorf("--json error: code=%d stderr=%q", code, errOut)
			}
		})
	}
	// --force overwrites.
	old, _ := os.ReadFile(filepath.Join(bdir, "full.backup"))
	addNodes(t, path, 3)
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full"), "--force")
	if now, _ := os.ReadFile(filepath.Join(bdir, "full.backup")); bytes.Equal(old, now) {
		t.Error("--force did not replace the backup")
	}
}

// TestUnwritableDir: a backup directory the user may not write to is
// reported before anything happens. Root may write anywhere, so the test
// needs an ordinary user.
func TestUnwritableDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: permission bits do not stop writes (TestBadInput covers a path under a regular file)")
	}
	dir, path := newDB(t)
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(ro, 0o755) })
	_, errOut, code := run(t, "--type", "full", "--db", path, "--output", filepath.Join(ro, "full"))
	if code != 1 || !strings.Contains(errOut, ro+": not writable") {
		t.Errorf("code=%d stderr=%q", code, errOut)
	}
}

// tree lists every file under dir with its size and hash, to prove a
// failed command wrote nothing.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if info.IsDir() {
			b.WriteString(rel + "/\n")
			return nil
		}
		if strings.HasSuffix(p, "-shm") {
			b.WriteString(rel + "\n") // lock and reader-mark memory: only its presence matters
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s %d %x\n", rel, len(data), sum[:8])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// syncBuffer is a bytes.Buffer safe for a daemon's goroutines to write
// while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
