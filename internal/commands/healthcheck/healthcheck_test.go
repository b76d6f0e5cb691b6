package healthcheck_test

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
	"github.com/sombradb/sombra/engine/backup"
	"github.com/sombradb/sombra/engine/health"
	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/cli/clitest"
	"github.com/sombradb/sombra/internal/commands/fixture"
	"github.com/sombradb/sombra/internal/commands/healthcheck"
)

// t0 is before any fixture was written, so ages measured from files
// written by the test clamp to zero and golden output is stable.
var t0 = time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC)

const gib = 1 << 30

// plenty is a 100 GiB volume with 40 GiB free.
func plenty(string) (uint64, uint64, error) { return 40 * gib, 100 * gib, nil }

func builder(clock cli.Clock, disk func(string) (uint64, uint64, error)) func(cli.IOStreams) *cobra.Command {
	return func(s cli.IOStreams) *cobra.Command {
		return healthcheck.NewCmd(&healthcheck.Options{IO: s, Clock: clock, DiskUsage: disk}, nil)
	}
}

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return clitest.RunCommand(t, builder(cli.FixedClock(t0, 0), plenty), args...)
}

func newDB(t *testing.T, spec fixture.Spec) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "app.db")
	fixture.Create(t, path, spec)
	return dir, path
}

func decode(t *testing.T, out string) healthcheck.Result {
	t.Helper()
	var r healthcheck.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("bad JSON %v: %s", err, out)
	}
	return r
}

func check(r healthcheck.Result, name string) health.Check {
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	return health.Check{Name: "(missing " + name + ")", Status: -1}
}

func golden(t *testing.T, dir, name string, code int, args ...string) {
	t.Helper()
	for _, js := range []bool{false, true} {
		a := args
		file := "testdata/" + name + ".golden"
		if js {
			a = append(append([]string{}, args...), "--json")
			file = "testdata/" + name + ".json.golden"
		}
		out, errOut, got := run(t, a...)
		if got != code || errOut != "" {
			t.Fatalf("%v: code=%d (want %d) stderr=%q\n%s", a, got, code, errOut, out)
		}
		clitest.Golden(t, file, []byte(fixture.Scrub(out, dir)))
	}
}

func TestHealthy(t *testing.T) {
	dir, path := newDB(t, fixture.Default)
	golden(t, dir, "healthy", 0, "--db", path)
}

func TestDegraded(t *testing.T) {
	dir, path := newDB(t, fixture.Fragmented)
	backups := filepath.Join(dir, "backups")
	os.MkdirAll(filepath.Join(backups, "2025"), 0o755)
	for name, age := range map[string]time.Duration{"full_20250113.backup": 71 * time.Hour, "2025/inc_20250114.backup": 30 * time.Hour, "notes.txt": time.Hour} {
		p := filepath.Join(backups, name)
		fixture.MustWrite(t, p, []byte("x"))
		os.Chtimes(p, t0.Add(-age), t0.Add(-age))
	}
	golden(t, dir, "degraded", 1, "--db", path, "--backup-dir", backups)
}

func TestCorruptPage(t *testing.T) {
	dir, path := newDB(t, fixture.Default)
	fixture.CorruptPage(t, path, 3, 4096)
	before := fixture.Sums(t, path)
	// A sample of 4 pages (0, 12, 24, ...) would miss page 3, but with no
	// record of an earlier verification the default check verifies every
	// page ...
	if out, _, code := run(t, "--db", path, "--sample-pages", "4", "--json"); code != 2 || check(decode(t, out), "page_checksums").Status != health.Unhealthy {
		t.Errorf("first default check: code=%d %s", code, out)
	}
	// ... and so does --deep.
	golden(t, dir, "corrupt-page", 2, "--db", path, "--deep")
	if fixture.Sums(t, path) != before {
		t.Error("health check changed the database")
	}
}

func TestCorruptHeader(t *testing.T) {
	dir, path := newDB(t, fixture.Default)
	fixture.CorruptPage(t, path, 0, 4096)
	golden(t, dir, "corrupt-header", 2, "--db", path)
}

func TestWALThresholds(t *testing.T) {
	_, path := newDB(t, fixture.Default)
	w, err := engine.OpenWithConfig(path, engine.Config{WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 0; i < 3; i++ {
		if err := w.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("More", nil); return err }); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := os.Stat(path + "-wal")
	wal := st.Size() // about 50 KiB
	for _, tc := range []struct {
		threshold string
		want      health.Status
		code      int
	}{
		{"1MiB", health.Healthy, 0},
		{fmt.Sprint(wal - 1), health.Degraded, 1},
		{fmt.Sprint(wal / 5), health.Unhealthy, 2},
	} {
		out, _, code := run(t, "--db", path, "--wal-threshold", tc.threshold, "--json")
		c := check(decode(t, out), "wal_size")
		if code != tc.code || c.Status != tc.want || *c.Value != float64(wal) {
			t.Errorf("--wal-threshold %s: code=%d check=%+v", tc.threshold, code, c)
		}
	}

	// Frames are pending: with the clock three hours on, the last
	// checkpoint is too old.
	// The checks above recorded their verification at the fixed clock,
	// long before this one: forget it, or full_verification_age degrades.
	os.Remove(path + health.VerifiedSuffix)
	later := builder(func() time.Time { return time.Now().Add(3 * time.Hour) }, plenty)
	out, _, code := clitest.RunCommand(t, later, "--db", path, "--json")
	if c := check(decode(t, out), "checkpoint_age"); code != 1 || c.Status != health.Degraded || !strings.Contains(c.Message, "WAL frames waiting") {
		t.Errorf("checkpoint age: code=%d %+v", code, c)
	}
	out, _, code = clitest.RunCommand(t, later, "--db", path, "--json", "--checkpoint-age", "4h")
	if c := check(decode(t, out), "checkpoint_age"); code != 0 || c.Status != health.Healthy {
		t.Errorf("checkpoint age 4h: code=%d %+v", code, c)
	}
}

func TestLocks(t *testing.T) {
	_, path := newDB(t, fixture.Default)
	w, err := engine.OpenWithConfig(path, engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	tx, err := w.BeginTransaction()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	out, _, code := run(t, "--db", path, "--json")
	c := check(decode(t, out), "locks")
	want := fmt.Sprintf("writer lock held by pid %d", os.Getpid())
	if code != 0 || c.Status != health.Healthy || !strings.Contains(c.Message, want) || !strings.Contains(c.Message, "1 reader(s)") {
		t.Errorf("code=%d locks=%+v (want %q)", code, c, want)
	}
}

func TestDiskSpace(t *testing.T) {
	_, path := newDB(t, fixture.Default)
	for _, tc := range []struct {
		free, total uint64
		flag        string
		want        health.Status
	}{
		{2 * gib, 100 * gib, "", health.Healthy},                 // default: min(1 GiB, 5 GiB)
		{600 << 20, 100 * gib, "", health.Degraded},              // under 1 GiB
		{200 << 20, 100 * gib, "", health.Unhealthy},             // under 256 MiB
		{600 << 20, 10 * gib, "", health.Healthy},                // 5% of 10 GiB is 512 MiB
		{400 << 20, 10 * gib, "", health.Degraded},               // under 512 MiB
		{20 * gib, 100 * gib, "30GiB", health.Degraded},          // explicit size
		{20 * gib, 100 * gib, "10%", health.Healthy},             // explicit percentage
		{20 * gib, 100 * gib, "25%", health.Degraded},            // explicit percentage
		{1 * gib, 100 * gib, "5GiB", health.Unhealthy},           // under a quarter
		{40 * gib, 100 * gib, "1099511627776", health.Unhealthy}, // plain bytes (1 TiB)
	} {
		disk := func(string) (uint64, uint64, error) { return tc.free, tc.total, nil }
		args := []string{"--db", path, "--json"}
		if tc.flag != "" {
			args = append(args, "--min-free-disk", tc.flag)
		}
		out, errOut, _ := clitest.RunCommand(t, builder(cli.FixedClock(t0, 0), disk), args...)
		if c := check(decode(t, out), "disk_space"); c.Status != tc.want {
			t.Errorf("free %d of %d, --min-free-disk %q: %+v %s", tc.free, tc.total, tc.flag, c, errOut)
		}
	}
	// The real volume is reported without a fake.
	out, _, _ := clitest.RunCommand(t, builder(nil, nil), "--db", path, "--json")
	if c := check(decode(t, out), "disk_space"); c.Value == nil || *c.Value <= 0 {
		t.Errorf("real disk check: %+v", c)
	}
}

func TestBackupChecks(t *testing.T) {
	dir, path := newDB(t, fixture.Default)
	backups := filepath.Join(dir, "backups")
	out, _, code := run(t, "--db", path, "--backup-dir", backups, "--json")
	if c := check(decode(t, out), "backup_age"); code != 2 || c.Status != health.Unhealthy || !strings.Contains(c.Message, "does not exist") {
		t.Errorf("missing dir: code=%d %+v", code, c)
	}
	os.Mkdir(backups, 0o755)
	out, _, code = run(t, "--db", path, "--backup-dir", backups, "--json")
	if c := check(decode(t, out), "backup_age"); code != 2 || !strings.Contains(c.Message, "no *.backup files") {
		t.Errorf("empty dir: code=%d %+v", code, c)
	}
	p := filepath.Join(backups, "full_1.backup")
	fixture.MustWrite(t, p, []byte("x"))
	os.Chtimes(p, t0.Add(-2*time.Hour), t0.Add(-2*time.Hour))
	out, _, code = run(t, "--db", path, "--backup-dir", backups, "--json")
	// (These files are not real backups, so the catalog check says no
	// backup is verified: degraded, exit 1.)
	if c := check(decode(t, out), "backup_age"); code != 1 || c.Status != health.Healthy || *c.Value != 7200 {
		t.Errorf("fresh backup: code=%d %+v", code, c)
	}
	out, _, code = run(t, "--db", path, "--backup-dir", backups, "--backup-age", "1h", "--json")
	if c := check(decode(t, out), "backup_age"); code != 1 || c.Status != health.Degraded {
		t.Errorf("--backup-age 1h: code=%d %+v", code, c)
	}
}

func TestUnknown(t *testing.T) {
	dir, path := newDB(t, fixture.Default)
	notDB := filepath.Join(dir, "notes.txt")
	fixture.MustWrite(t, notDB, []byte(strings.Repeat("not a database\n", 500)))
	empty := filepath.Join(dir, "empty.db")
	fixture.MustWrite(t, empty, nil)
	for _, tt := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"missing file", []string{"--db", filepath.Join(dir, "nope.db")}, "nope.db: no such file"},
		{"directory", []string{"--db", dir}, "is a directory, not a database file"},
		{"not a database", []string{"--db", notDB}, "not a sombra database"},
		{"empty file", []string{"--db", empty}, "not a sombra database"},
		{"no --db", nil, "--db is required"},
		{"unknown flag", []string{"--db", path, "--shallow"}, "unknown flag: --shallow"},
		{"bad threshold", []string{"--db", path, "--wal-threshold", "lots"}, `invalid argument "lots" for "--wal-threshold"`},
		{"bad min free", []string{"--db", path, "--min-free-disk", "150%"}, "--min-free-disk"},
		{"bad frag threshold", []string{"--db", path, "--frag-threshold", "0"}, "--frag-threshold 0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := fixture.Sums(t, notDB) + fixture.Sums(t, path)
			out, errOut, code := run(t, tt.args...)
			if code != 3 || out != "" || !strings.Contains(errOut, tt.stderr) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("code=%d stdout=%q stderr=%q (want %q)", code, out, errOut, tt.stderr)
			}
			_, errOut, code = run(t, append(tt.args, "--json")...)
			var doc struct {
				Error struct{ Code int } `json:"error"`
			}
			if code != 3 || json.Unmarshal([]byte(errOut), &doc) != nil || doc.Error.Code != 3 {
				t.Errorf("--json: code=%d stderr=%q", code, errOut)
			}
			if fixture.Sums(t, notDB)+fixture.Sums(t, path) != before {
				t.Error("files changed")
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "nope.db")); !os.IsNotExist(err) {
		t.Error("health check created a database")
	}
}

// TestVerifiedBackup uses real backups and the backup catalog.
func TestVerifiedBackup(t *testing.T) {
	dir, path := newDB(t, fixture.Default)
	backups := filepath.Join(dir, "backups")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	m := backup.NewBackupManager(db, backups)
	if _, err := m.CreateFullBackup("full_1"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	args := []string{"--db", path, "--backup-dir", backups, "--json"}

	out, _, code := run(t, args...)
	if c := check(decode(t, out), "verified_backup_age"); code != 1 || c.Status != health.Degraded || !strings.Contains(c.Message, "no verified backup") {
		t.Errorf("unverified: code=%d %+v", code, c)
	}
	if _, err := backup.Verify(backups, "full_1", backup.Options{}); err != nil {
		t.Fatal(err)
	}
	// The backup was made moments ago (real time), so the check's clock
	// must be real too.
	now := builder(nil, plenty)
	os.Remove(path + health.VerifiedSuffix) // recorded at the fixed clock
	out, _, code = clitest.RunCommand(t, now, args...)
	if c := check(decode(t, out), "verified_backup_age"); code != 0 || c.Status != health.Healthy || !strings.Contains(c.Message, "full_1") {
		t.Errorf("verified: code=%d %+v", code, c)
	}
	later := builder(func() time.Time { return time.Now().Add(30 * time.Hour) }, plenty)
	out, _, code = clitest.RunCommand(t, later, args...)
	r := decode(t, out)
	if c := check(r, "verified_backup_age"); code != 1 || c.Status != health.Degraded || *c.Value < 30*3600 {
		t.Errorf("30h later: code=%d %+v", code, c)
	}
	if c := check(r, "backup_age"); c.Status != health.Degraded {
		t.Errorf("30h later backup_age: %+v", c)
	}

	// A newer backup that fails verification makes the database unhealthy.
	db, err = engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("More", nil); return err }); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.NewBackupManager(db, backups).CreateFullBackup("full_2"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	b := filepath.Join(backups, "full_2.backup")
	st, _ := os.Stat(b)
	fixture.CorruptPage(t, b, st.Size()/2/4096, 4096)
	if _, err := backup.Verify(backups, "full_2", backup.Options{}); err == nil {
		t.Fatal("verifying a damaged backup succeeded")
	}
	out, _, code = clitest.RunCommand(t, now, args...)
	if c := check(decode(t, out), "verified_backup_age"); code != 2 || c.Status != health.Unhealthy || !strings.Contains(c.Message, "full_2 failed verification") {
		t.Errorf("failed verification: code=%d %+v", code, c)
	}
}

// TestTerminal: on a terminal the checks are a table with coloured
// statuses, unless --no-color or NO_COLOR says otherwise.
func TestTerminal(t *testing.T) {
	_, path := newDB(t, fixture.Fragmented)
	tty := func(args ...string) string {
		s, _, out, _ := cli.Test()
		s.IsTTY = true
		if code := cli.Run(builder(cli.FixedClock(t0, 0), plenty)(s), args); code != 1 {
			t.Fatalf("code %d", code)
		}
		return out.String()
	}
	t.Setenv("NO_COLOR", "")
	out := tty("--db", path)
	for _, want := range []string{"\x1b[33mdegraded\x1b[0m", "\x1b[32mhealthy\x1b[0m", "│ fragmentation ", "CHECK"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %q:\n%s", want, out)
		}
	}
	if out := tty("--db", path, "--no-color"); strings.Contains(out, "\x1b[") || !strings.Contains(out, "│ fragmentation ") {
		t.Errorf("--no-color output:\n%s", out)
	}
	t.Setenv("NO_COLOR", "1")
	if out := tty("--db", path); strings.Contains(out, "\x1b[") {
		t.Errorf("NO_COLOR output has colour:\n%s", out)
	}
}

// TestDamagedMagic: page 0's first 100 bytes overwritten, the rest intact:
// unhealthy (2), not unknown (3) as for a foreign file.
func TestDamagedMagic(t *testing.T) {
	_, path := newDB(t, fixture.Default)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		b[i] = 'x'
	}
	fixture.MustWrite(t, path, b)
	out, errOut, code := run(t, "--db", path, "--json")
	if code != 2 {
		t.Fatalf("code %d (want 2)\nstdout %s\nstderr %s", code, out, errOut)
	}
	if c := check(decode(t, out), health.CheckHeader); c.Status != health.Unhealthy {
		t.Fatalf("header check %+v", c)
	}
}

// TestPipedAndQuiet (issue 12 #13): piped output is pure TSV (the header
// line first, no summary), a terminal gets the summary line; --quiet prints
// nothing when healthy and one line on stderr naming the failing checks
// when degraded.
func TestPipedAndQuiet(t *testing.T) {
	_, path := newDB(t, fixture.Fragmented)
	out, _, code := run(t, "--db", path)
	if code != 1 || !strings.HasPrefix(out, "check\tstatus\tmessage\n") {
		t.Errorf("piped: code=%d\n%s", code, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Count(line, "\t") != 2 {
			t.Errorf("piped line is not 3 TSV fields: %q", line)
		}
	}
	tty := func(s cli.IOStreams) *cobra.Command {
		s.IsTTY = true
		return builder(cli.FixedClock(t0, 0), plenty)(s)
	}
	if out, _, _ := clitest.RunCommand(t, tty, "--db", path, "--no-color"); !strings.HasPrefix(out, path+": degraded (fragmentation)") {
		t.Errorf("terminal output lacks the summary line:\n%s", out)
	}
	out, errOut, code := run(t, "--db", path, "--quiet")
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 ||
		!strings.HasPrefix(errOut, "sombra-health-check: "+path+": degraded: fragmentation: a compaction would reclaim") {
		t.Errorf("--quiet degraded: code=%d stdout=%q stderr=%q", code, out, errOut)
	}
	_, healthy := newDB(t, fixture.Default)
	if out, errOut, code := run(t, "--db", healthy, "--quiet"); code != 0 || out != "" || errOut != "" {
		t.Errorf("--quiet healthy: code=%d stdout=%q stderr=%q", code, out, errOut)
	}
}
