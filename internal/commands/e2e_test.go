package commands_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/internal/cli/clitest"
	"github.com/sombradb/sombra/internal/commands/fixture"
)

// TestMain removes the binaries built for the end-to-end tests.
func TestMain(m *testing.M) {
	clitest.RunHolderIfChild() // the lock holder of TestInterruptCheckpointWait
	if path := os.Getenv(genGraphEnv); path != "" {
		os.Exit(genGraphChild(path)) // a generator child of TestStreamingMemoryBound
	}
	if path := os.Getenv(metricsWriterEnv); path != "" {
		os.Exit(metricsWriterChild(path)) // a writer child of TestMetricsExporter
	}
	code := m.Run()
	clitest.RemoveBinaries()
	os.Exit(code)
}

// binaries returns the directory of the built tools (clitest.Binaries).
func binaries(t *testing.T) string { return clitest.Binaries(t) }

type shell struct {
	t   *testing.T
	env []string
	dir string
}

func newShell(t *testing.T, bin, dir string, env ...string) *shell {
	env = append(os.Environ(), append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "NO_COLOR=1")...)
	return &shell{t: t, env: env, dir: dir}
}

// run runs script with bash -e -o pipefail and returns stdout, stderr and
// the exit status.
func (s *shell) run(script string) (string, string, int) {
	s.t.Helper()
	cmd := exec.Command("bash", "-e", "-o", "pipefail", "-c", script)
	cmd.Env, cmd.Dir = s.env, s.dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

func (s *shell) ok(script string) string {
	s.t.Helper()
	out, errOut, code := s.run(script)
	if code != 0 {
		s.t.Errorf("%s\nexit %d\nstdout: %s\nstderr: %s", script, code, out, errOut)
	}
	return out
}

// maintenance is the guide's maintenance.sh with its invocations exactly as
// written. Two changes make it run: the guide lost the line
// `if [ "$FRAGMENTATION" -gt 20 ]; then` before the compaction (its `fi`
// is there), and the backup step runs only once sombra-backup exists.
const maintenance = `#!/bin/bash
# maintenance.sh - Daily maintenance script
DB_PATH="${DB_PATH:-/data/production.db}"
BACKUP_DIR="${BACKUP_DIR:-/backups}"
LOG_FILE="${LOG_FILE:-/var/log/sombra-maintenance.log}"
log() {
echo "[$(date '+%Y-%m-%d %H:%M:%S')] $1" | tee -a "$LOG_FILE"
}
# Health check
log "Starting health check..."
if ! sombra-health-check --db "$DB_PATH"; then
log "Health check failed!"
exit 1
fi
# Backup
if command -v sombra-backup >/dev/null; then
log "Creating backup..."
sombra-backup --type incremental --input "$DB_PATH" --output "$BACKUP_DIR/inc_$(date +%Y%m%d_%H%M%S)"
fi
# Checkpoint if WAL is large
WAL_SIZE=$(sombra-info --db "$DB_PATH" --wal-size)
if [ "$WAL_SIZE" -gt 104857600 ]; then # 100MB
log "WAL size is ${WAL_SIZE} bytes, checkpointing..."
sombra-checkpoint --db "$DB_PATH" --mode full
fi
# Compact if fragmentation is high
FRAGMENTATION=$(sombra-info --db "$DB_PATH" --fragmentation)
if [ "$FRAGMENTATION" -gt 20 ]; then
log "Fragmentation is ${FRAGMENTATION}%, compacting..."
sombra-compact --db "$DB_PATH"
fi
log "Maintenance completed successfully"
`

func TestEndToEnd(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		t.Skip("jq not on PATH")
	}
	bin := binaries(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "production.db")
	fixture.Create(t, db, fixture.Moderate)
	sh := newShell(t, bin, dir, "DB_PATH="+db, "BACKUP_DIR="+filepath.Join(dir, "backups"), "LOG_FILE="+filepath.Join(dir, "maintenance.log"))
	fixture.MustWrite(t, filepath.Join(dir, "maintenance.sh"), []byte(maintenance))

	// The bare numbers are integers a shell can compare.
	if out := sh.ok(`sombra-info --db "$DB_PATH" --wal-size`); !regexp.MustCompile(`^\d+\n$`).MatchString(out) {
		t.Errorf("--wal-size printed %q", out)
	}
	if out := sh.ok(`sombra-info --db "$DB_PATH" --fragmentation`); out != "23\n" {
		t.Errorf("--fragmentation printed %q, want 23 (what the compaction below reclaims: 266 -> 204 pages)", out)
	}

	out := sh.ok(`bash ./maintenance.sh`)
	for _, want := range []string{"Starting health check...", "Fragmentation is 23%, compacting...", "Maintenance completed successfully"} {
		if !strings.Contains(out, want) {
			t.Errorf("maintenance.sh output lacks %q:\n%s", want, out)
		}
	}
	if out := sh.ok(`sombra-info --db "$DB_PATH" --fragmentation`); out != "0\n" {
		t.Errorf("after maintenance --fragmentation = %q", out)
	}
	sh.ok(`sombra-checkpoint --db "$DB_PATH" --mode full`)
	sh.ok(`sombra-compact --db "$DB_PATH"`)

	// Every --json document is one object with schema_version 1 that jq
	// can query.
	for _, check := range []string{
		`sombra-info --db "$DB_PATH" --json | jq -e '.schema_version==2 and .node_count>0 and .edge_count>0 and (.labels|length)>0 and (.created_at|fromdateiso8601)>0'`,
		`sombra-info --db "$DB_PATH" --json | jq -e '.fragmentation_percent < 1 and .free_pages == 0'`,
		`sombra-info --db "$DB_PATH" --wal-size --json | jq -e '.schema_version==2 and (.wal_size|type)=="number"'`,
		`sombra-info --db "$DB_PATH" --fragmentation --json | jq -e '.schema_version==2 and .fragmentation_percent>=0'`,
		`sombra-info --db "$DB_PATH" --indexes --json | jq -e '.schema_version==2 and any(.indexes[]; .name=="property:email" and .selectivity==1)'`,
		`sombra-info --db "$DB_PATH" --metrics json | jq -e '.transactions_committed>=0 and (.cache_hit_rate|type)=="number"'`,
		`sombra-info --db "$DB_PATH" --metrics prometheus | grep -q '^sombra_cache_hit_rate '`,
		`sombra-checkpoint --db "$DB_PATH" --status --json | jq -e '.schema_version==2 and .checkpoint_pending==false'`,
		`sombra-checkpoint --db "$DB_PATH" --mode truncate --json | jq -e '.schema_version==2 and .mode=="truncate" and .wal_size_after==0'`,
		`sombra-compact --db "$DB_PATH" --analyze --json | jq -e '.schema_version==2 and .action=="analyzed" and .compaction==null'`,
		`sombra-compact --db "$DB_PATH" --threshold 20 --json | jq -e '.action=="skipped" and .threshold_percent==20'`,
		`sombra-compact --db "$DB_PATH" --threshold 20 | grep -q 'below threshold 20.00%, nothing to do'`,
		`sombra-health-check --db "$DB_PATH" --json | jq -e '.schema_version==2 and .status=="healthy" and .healthy and (.checks|length)>=7 and (.checked_at|fromdateiso8601)>0 and .db=="'"$DB_PATH"'"'`,
		`sombra-health-check --db "$DB_PATH" --deep --json | jq -e 'any(.checks[]; .name=="structure" and .healthy)'`,
	} {
		sh.ok(check)
	}
	if _, err := os.Stat(filepath.Join(dir, "maintenance.log")); err != nil {
		t.Errorf("maintenance.sh wrote no log: %v", err)
	}

	// The repository's scripts/maintenance.sh (the guide's, with backups)
	// runs through too, once sombra-backup is among the binaries.
	script, err := filepath.Abs("../../scripts/maintenance.sh")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(bin, "sombra-backup")); err != nil {
		t.Logf("sombra-backup not built; skipping %s", script)
		return
	}
	db2 := filepath.Join(dir, "scripted.db")
	fixture.Create(t, db2, fixture.Moderate)
	sh2 := newShell(t, bin, dir, "DB_PATH="+db2, "BACKUP_DIR="+filepath.Join(dir, "backups2"), "LOG_FILE="+filepath.Join(dir, "scripted.log"))
	// It is quiet on success (cron mails output); the log tells what it did.
	if out := sh2.ok(`bash "` + script + `"`); out != "" {
		t.Errorf("scripts/maintenance.sh printed %q", out)
	}
	if lg := readLog(t, filepath.Join(dir, "scripted.log")); !strings.Contains(lg, "maintenance completed successfully") || !strings.Contains(lg, "compacting") {
		t.Errorf("scripts/maintenance.sh log:\n%s", lg)
	}
}

// TestBadInputEveryTool runs each binary on bad input as a separate
// process: the exit code, one clear line on stderr (or one JSON object
// with --json) and unchanged files.
func TestBadInputEveryTool(t *testing.T) {
	bin := binaries(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	fixture.Create(t, good, fixture.Default)
	notDB := filepath.Join(dir, "notes.txt")
	fixture.MustWrite(t, notDB, []byte(strings.Repeat("this is not a database\n", 300)))
	corrupt := filepath.Join(dir, "corrupt.db")
	fixture.Create(t, corrupt, fixture.Default)
	fixture.CorruptPage(t, corrupt, 3, 4096)
	header := filepath.Join(dir, "header.db")
	fixture.Create(t, header, fixture.Default)
	fixture.CorruptPage(t, header, 0, 4096)
	locked := filepath.Join(dir, "locked.db")
	fixture.Create(t, locked, fixture.Default)
	missing := filepath.Join(dir, "missing.db")

	// This test process holds the writer lock of locked.db; the tools run
	// as other processes.
	holder, err := engine.OpenWithConfig(locked, engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	tx, err := holder.BeginTransaction()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	pid := fmt.Sprintf("pid %d", os.Getpid())

	sh := newShell(t, bin, dir)
	type tc struct {
		cmd    string
		code   int
		stderr string
	}
	cases := []tc{
		{"sombra-info --db missing.db", 1, "missing.db: no such file"},
		{"sombra-info --db notes.txt", 1, "notes.txt: not a sombra database"},
		{"sombra-info --db header.db", 4, "corrupt page 0"},
		{"sombra-info --db good.db --bogus", 2, "unknown flag: --bogus"},
		{"sombra-info --db good.db --metrics xml", 2, "must be one of prometheus|json|statsd"},
		{"sombra-checkpoint --db missing.db --mode full", 1, "missing.db: no such file"},
		{"sombra-checkpoint --db notes.txt --mode full", 1, "not a sombra database"},
		{"sombra-checkpoint --db header.db --mode full", 4, "corrupt page 0"},
		{"sombra-checkpoint --db locked.db --mode full --wait 100ms", 3, "writer lock held by " + pid},
		{"sombra-checkpoint --db good.db --mode sideways", 2, `invalid argument "sideways" for "--mode" flag`},
		{"sombra-checkpoint --db good.db --bogus", 2, "unknown flag: --bogus"},
		{"sombra-compact --db missing.db", 1, "missing.db: no such file"},
		{"sombra-compact --db notes.txt", 1, "not a sombra database"},
		{"sombra-compact --db header.db", 4, "corrupt page 0"},
		{"sombra-compact --db corrupt.db", 4, "corrupt page 3"},
		{"sombra-compact --db locked.db", 3, pid},
		{"sombra-compact --db good.db --threshold lots", 2, `invalid argument "lots" for "--threshold"`},
		{"sombra-compact --db good.db --bogus", 2, "unknown flag: --bogus"},
		{"sombra-health-check --db missing.db", 3, "missing.db: no such file"},
		{"sombra-health-check --db notes.txt", 3, "not a sombra database"},
		{"sombra-health-check --db good.db --bogus", 3, "unknown flag: --bogus"},
	}
	files := []string{good, notDB, corrupt, header, locked}
	for _, c := range cases {
		t.Run(c.cmd, func(t *testing.T) {
			before := map[string]string{}
			for _, f := range files {
				before[f] = fixture.Sums(t, f)
			}
			out, errOut, code := sh.run(c.cmd)
			if code != c.code || out != "" || !strings.Contains(errOut, c.stderr) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("exit %d (want %d)\nstdout %q\nstderr %q (want %q)", code, c.code, out, errOut, c.stderr)
			}
			_, errOut, code = sh.run("set +o pipefail; " + c.cmd + " --json 2>&1 >/dev/null | jq -e '.schema_version==1 and .error.code==" + fmt.Sprint(c.code) + "'")
			if code != 0 {
				t.Errorf("--json error is not one JSON object with code %d: %q", c.code, errOut)
			}
			for _, f := range files {
				if fixture.Sums(t, f) != before[f] {
					t.Errorf("%s changed", filepath.Base(f))
				}
			}
			if _, err := os.Stat(missing); !os.IsNotExist(err) {
				t.Fatal("a tool created missing.db")
			}
		})
	}

	// Health verdicts on damaged databases are results, not errors: a
	// report on stdout and exit 2 (unhealthy).
	for _, c := range []string{"sombra-health-check --db header.db", "sombra-health-check --db corrupt.db --deep"} {
		out, _, code := sh.run(c + " --json | jq -e '.status==\"unhealthy\"'")
		if code != 2 || !strings.Contains(out, "true") {
			t.Errorf("%s: exit %d, %q", c, code, out)
		}
	}
	// The locked database is still readable and healthy; the lock is news.
	sh.ok(`sombra-info --db locked.db --json | jq -e '.node_count>0'`)
	sh.ok(`sombra-health-check --db locked.db --json | jq -e 'any(.checks[]; .name=="locks" and (.message|contains("writer lock held by ` + pid + `")))'`)
}
