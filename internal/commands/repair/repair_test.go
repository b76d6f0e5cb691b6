package repair_test

import (
	"encoding/json"
	"errors"
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
	"github.com/sombradb/sombra/internal/commands/fixture"
	"github.com/sombradb/sombra/internal/commands/repair"
	"github.com/sombradb/sombra/internal/fixtures"
)

var t0 = time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC)

func build(s cli.IOStreams) *cobra.Command {
	return repair.NewCmd(&repair.Options{IO: s, Clock: cli.FixedClock(t0, 250*time.Millisecond)}, nil)
}

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return clitest.RunCommand(t, build, args...)
}

// copyFixture copies a committed fixture (and its WAL) into a new
// temporary directory.
func copyFixture(t *testing.T, name string) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, name)
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(filepath.Join(fixtures.Dir(), name+suffix))
		if errors.Is(err, os.ErrNotExist) && suffix != "" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		fixture.MustWrite(t, path+suffix, b)
	}
	return dir, path
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		golden, fixture string
		args            []string
		code            int
		// humanOnly: hundreds of follow-on issues make a huge JSON golden;
		// the human view caps them per kind.
		humanOnly bool
	}{
		{"verify-healthy", fixtures.Healthy, nil, 0, false},
		{"verify-dangling-edge", fixtures.DanglingEdge, nil, 4, false},
		{"verify-torn-wal", fixtures.TornWAL, nil, 0, false},
		{"verify-corrupt-page", fixtures.CorruptPage, nil, 4, true},
		{"verify-bad-header", fixtures.BadHeader, nil, 4, false},
		{"verify-quick", fixtures.CorruptPage, []string{"--quick"}, 4, false},
		{"fix-dangling-edge", fixtures.DanglingEdge, []string{"--fix"}, 0, false},
		{"fix-torn-wal", fixtures.TornWAL, []string{"--fix"}, 0, false},
		{"fix-healthy", fixtures.Healthy, []string{"--fix"}, 0, false},
		{"fix-corrupt-page", fixtures.CorruptPage, []string{"--fix"}, 4, true},
		{"salvage-corrupt-page", fixtures.CorruptPage, []string{"--salvage-to", "OUT"}, 0, false},
		{"salvage-bad-header", fixtures.BadHeader, []string{"--salvage-to", "OUT"}, 0, false},
	} {
		for _, js := range []bool{false, true} {
			if js && tc.humanOnly {
				continue
			}
			name := tc.golden
			if js {
				name += ".json"
			}
			t.Run(name, func(t *testing.T) {
				dir, path := copyFixture(t, tc.fixture)
				args := []string{"--db", path}
				for _, a := range tc.args {
					args = append(args, strings.ReplaceAll(a, "OUT", filepath.Join(dir, "out.db")))
				}
				if js {
					args = append(args, "--json")
				}
				out, errOut, code := run(t, args...)
				if code != tc.code || errOut != "" {
					t.Fatalf("%v: code=%d (want %d) stderr=%q", args, code, tc.code, errOut)
				}
				if js && !json.Valid([]byte(out)) {
					t.Fatalf("not JSON: %s", out)
				}
				clitest.Golden(t, "testdata/"+name+".golden", []byte(fixture.Scrub(out, dir)))
			})
		}
	}
}

func decode(t *testing.T, out string) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if doc["schema_version"] != float64(2) {
		t.Fatalf("schema_version = %v", doc["schema_version"])
	}
	return doc
}

func TestJSONDocuments(t *testing.T) {
	_, path := copyFixture(t, fixtures.DanglingEdge)
	out, _, code := run(t, "--db", path, "--json")
	doc := decode(t, out)
	issues, _ := doc["issues"].([]any)
	if code != 4 || doc["action"] != "verify" || doc["corrupt"] != true || doc["healthy"] != false || len(issues) != 9 {
		t.Fatalf("verify: code %d %v", code, doc)
	}
	first, _ := issues[0].(map[string]any)
	for _, k := range []string{"severity", "kind", "description"} {
		if _, ok := first[k].(string); !ok {
			t.Errorf("issue field %s missing: %v", k, first)
		}
	}

	out, _, code = run(t, "--db", path, "--fix", "--json")
	doc = decode(t, out)
	actions, _ := doc["actions"].([]any)
	remaining, ok := doc["remaining"].([]any)
	if code != 0 || doc["success"] != true || doc["issues_found"] != float64(9) || doc["issues_fixed"] != float64(9) ||
		len(actions) == 0 || !ok || len(remaining) != 0 {
		t.Fatalf("fix: code %d %v", code, doc)
	}

	out, _, code = run(t, "--db", path, "--json")
	if doc = decode(t, out); code != 0 || doc["healthy"] != true {
		t.Fatalf("verify after fix: code %d %v", code, doc)
	}

	dir, src := copyFixture(t, fixtures.CorruptPage)
	out, _, code = run(t, "--db", src, "--salvage-to", filepath.Join(dir, "new.db"), "--json")
	doc = decode(t, out)
	m, err := fixtures.LoadManifest(fixtures.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || doc["action"] != "salvage" || doc["verified"] != true ||
		doc["nodes_salvaged"] != float64(m.Healthy.Nodes-len(m.CorruptPage.NodesOnPage)) {
		t.Fatalf("salvage: code %d %v", code, doc)
	}
}

// Verification never changes the database file or its WAL.
func TestVerifyIsReadOnly(t *testing.T) {
	for _, name := range []string{fixtures.Healthy, fixtures.TornWAL, fixtures.DanglingEdge, fixtures.CorruptPage,
		fixtures.BadHeader, fixtures.Truncated, fixtures.NotADB} {
		for _, args := range [][]string{nil, {"--quick"}, {"--json"}} {
			_, path := copyFixture(t, name)
			before := fixture.Sums(t, path)
			run(t, append([]string{"--db", path}, args...)...)
			if after := fixture.Sums(t, path); after != before {
				t.Errorf("%s %v: files changed", name, args)
			}
		}
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		args    []string
		code    int
		stderr  string
	}{
		{fixtures.Healthy, nil, 0, ""},
		{fixtures.TornWAL, nil, 0, ""}, // warnings only
		{fixtures.DanglingEdge, nil, 4, ""},
		{fixtures.Truncated, nil, 4, ""},
		{fixtures.Truncated, []string{"--fix"}, 4, ""},
		{fixtures.BadHeader, []string{"--fix"}, 4, ""},
		{fixtures.NotADB, nil, 1, "not a sombra database"},
		{fixtures.NotADB, []string{"--fix"}, 1, "not a sombra database"},
		{fixtures.NotADB, []string{"--salvage-to", "OUT"}, 1, "not a sombra database"},
		{"missing.db", nil, 1, "no such file"},
		{fixtures.Healthy, []string{"--quick", "--fix"}, 2, "--help"},
		{fixtures.Healthy, []string{"--fix", "--salvage-to", "OUT"}, 2, "--help"},
		{fixtures.Healthy, []string{"--force"}, 2, "go with --salvage-to"},
		{fixtures.Healthy, []string{"extra"}, 2, "--help"},
		{fixtures.Healthy, []string{"--wait", "-1s"}, 2, "--help"},
	} {
		dir, path := t.TempDir(), ""
		if tc.fixture == "missing.db" {
			path = filepath.Join(dir, tc.fixture)
		} else {
			dir, path = copyFixture(t, tc.fixture)
		}
		args := []string{"--db", path}
		for _, a := range tc.args {
			args = append(args, strings.ReplaceAll(a, "OUT", filepath.Join(dir, "out.db")))
		}
		_, errOut, code := run(t, args...)
		if code != tc.code || !strings.Contains(errOut, tc.stderr) {
			t.Errorf("%s %v: code %d (want %d), stderr %q", tc.fixture, tc.args, code, tc.code, errOut)
		}
		if tc.fixture == "missing.db" {
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Error("a missing database was created")
			}
		}
	}
	if _, _, code := run(t); code != 2 {
		t.Errorf("no --db: code %d", code)
	}
}

func TestSalvageOutputExists(t *testing.T) {
	dir, path := copyFixture(t, fixtures.Healthy)
	out := filepath.Join(dir, "new.db")
	fixture.MustWrite(t, out, []byte("precious"))
	_, errOut, code := run(t, "--db", path, "--salvage-to", out)
	if code != 1 || !strings.Contains(errOut, "--force") {
		t.Fatalf("code %d stderr %q", code, errOut)
	}
	if b, _ := os.ReadFile(out); string(b) != "precious" {
		t.Fatal("existing output changed without --force")
	}
	_, errOut, code = run(t, "--db", path, "--salvage-to", out, "--json")
	var doc struct {
		Error struct {
			Code int
			Kind string
		}
	}
	if code != 1 || json.Unmarshal([]byte(errOut), &doc) != nil || doc.Error.Kind != cli.KindExists {
		t.Fatalf("JSON error: code %d %q", code, errOut)
	}
	if _, _, code := run(t, "--db", path, "--salvage-to", out, "--force"); code != 0 {
		t.Fatalf("--force: code %d", code)
	}
	if _, _, code := run(t, "--db", out); code != 0 {
		t.Fatal("salvaged database does not verify")
	}
}

func TestLockedDatabase(t *testing.T) {
	_, path := copyFixture(t, fixtures.DanglingEdge)
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	before := fixture.Sums(t, path)

	// --fix needs the database to itself.
	_, errOut, code := run(t, "--db", path, "--fix")
	if code != 3 || !strings.Contains(errOut, "locked") {
		t.Fatalf("--fix while open elsewhere: code %d stderr %q", code, errOut)
	}
	_, errOut, code = run(t, "--db", path, "--fix", "--json")
	var doc struct {
		SchemaVersion int `json:"schema_version"`
		Error         struct {
			Code int
			Kind string
		}
	}
	if code != 3 || json.Unmarshal([]byte(errOut), &doc) != nil || doc.Error.Kind != cli.KindBusy || doc.Error.Code != 3 || doc.SchemaVersion != 1 {
		t.Fatalf("JSON busy error: code %d %q", code, errOut)
	}
	if fixture.Sums(t, path) != before {
		t.Fatal("a refused repair changed the database")
	}

	// Verify and salvage only read: an idle connection does not stop them.
	if _, _, code := run(t, "--db", path); code != 4 {
		t.Fatalf("verify while open elsewhere: code %d", code)
	}
	// A writer stops salvage (the files must hold still).
	tx, err := db.BeginTransaction()
	if err != nil {
		t.Fatal(err)
	}
	_, errOut, code = run(t, "--db", path, "--salvage-to", filepath.Join(t.TempDir(), "new.db"))
	tx.Rollback()
	if code != 3 {
		t.Fatalf("salvage during a write: code %d stderr %q", code, errOut)
	}
	// An exclusive holder (compaction, restore) stops even verification:
	// engine/repair's TestRepairBusy shows the engine says ErrBusy, which
	// is code 3 as the writer case above shows.
}

func TestWaitForLock(t *testing.T) {
	_, path := copyFixture(t, fixtures.DanglingEdge)
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		db.Close()
	}()
	if _, errOut, code := run(t, "--db", path, "--fix", "--wait", "10s"); code != 0 {
		t.Fatalf("--fix --wait: code %d stderr %q", code, errOut)
	}
}

func TestHelpHasExamples(t *testing.T) {
	out, _, code := run(t, "--help")
	if code != 0 || !strings.Contains(out, "--salvage-to /data/recovered.db") || !strings.Contains(out, "EXIT STATUS") {
		t.Fatalf("help: %d %s", code, out)
	}
}

// TestDamagedMagic: bytes 0-99 of page 0 overwritten. The other pages are
// intact, so salvage recovers the data: the file is a corrupt Sombra
// database (exit 4), not a foreign file (exit 1, "not a sombra database").
func TestDamagedMagic(t *testing.T) {
	dir, path := copyFixture(t, fixtures.Healthy)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		b[i] = 'x'
	}
	fixture.MustWrite(t, path, b)
	for _, args := range [][]string{nil, {"--quick"}, {"--fix"}} {
		out, errOut, code := run(t, append([]string{"--db", path}, args...)...)
		if code != 4 || strings.Contains(out+errOut, "not a sombra database") || !strings.Contains(out+errOut, "header") {
			t.Errorf("%v: code %d (want 4)\nstdout %s\nstderr %s", args, code, out, errOut)
		}
	}
	out, errOut, code := run(t, "--db", path, "--salvage-to", filepath.Join(dir, "out.db"))
	if code != 0 {
		t.Errorf("salvage: code %d\n%s\n%s", code, out, errOut)
	}
}

// TestFixDryRun (issue 12 #18): --fix --dry-run reports the actions and
// outcome --fix would have (the repair runs on a scratch copy), exits as
// --fix would, leaves every byte and mtime of the database directory as it
// was, and leaves no scratch copy behind; --fix then does what it said.
func TestFixDryRun(t *testing.T) {
	for _, name := range []string{fixtures.DanglingEdge, fixtures.TornWAL} {
		t.Run(name, func(t *testing.T) {
			dir, path := copyFixture(t, name)
			run(t, "--db", path) // a first read-only open may create -shm
			before := fixture.DirState(t, dir)
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			out, errOut, code := run(t, "--db", path, "--fix", "--dry-run", "--json")
			dry := decode(t, out)
			if code != 0 || dry["dry_run"] != true || dry["success"] != true || dry["db"] != path || len(dry["actions"].([]any)) == 0 {
				t.Fatalf("dry run: code=%d stderr=%s\n%s", code, errOut, out)
			}
			if after := fixture.DirState(t, dir); after != before {
				t.Errorf("--dry-run changed the directory:\nbefore\n%s\nafter\n%s", before, after)
			}
			if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
				t.Errorf("scratch copy left in $TMPDIR: %v", ents)
			}
			if out, _, _ := run(t, "--db", path, "--fix", "--dry-run"); !strings.Contains(out, "actions --fix would take") ||
				!strings.Contains(out, "dry run: the database was not changed") {
				t.Errorf("human dry run:\n%s", out)
			}
			out, _, code = run(t, "--db", path, "--fix", "--json")
			real := decode(t, out)
			if code != 0 || real["dry_run"] != false || fmt.Sprint(real["actions"]) != fmt.Sprint(dry["actions"]) ||
				real["issues_fixed"] != dry["issues_fixed"] {
				t.Errorf("--fix did not do what --dry-run said:\ndry  %v\nreal %v", dry, real)
			}
		})
	}
	if _, errOut, code := run(t, "--db", "x.db", "--dry-run"); code != 2 || !strings.Contains(errOut, "--dry-run goes with --fix") {
		t.Errorf("--dry-run without --fix: code=%d stderr=%q", code, errOut)
	}
}
