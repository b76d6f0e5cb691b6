package commands_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/internal/commands/fixture"
)

// The repository's scripts/backup.sh and scripts/maintenance.sh run as cron
// runs them: env -i with only PATH (and the scripts' own settings), output
// captured as cron would mail it.

func scriptPath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("../../scripts", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type scriptRun struct {
	stdout, stderr string
	code           int
}

// cronCmd builds `env -i PATH=path VARS... bash script`.
func cronCmd(t *testing.T, script, path string, vars ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	args := append([]string{"-i", "PATH=" + path}, vars...)
	args = append(args, "bash", script)
	cmd := exec.Command("env", args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	return cmd, &out, &errOut
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0
}

func runCron(t *testing.T, script, path string, vars ...string) scriptRun {
	t.Helper()
	cmd, out, errOut := cronCmd(t, script, path, vars...)
	code := exitCode(t, cmd.Run())
	return scriptRun{out.String(), errOut.String(), code}
}

func readLog(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func backups(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.backup"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestScriptsQuietUnderCron: both scripts succeed under env -i, print
// nothing (cron mails any output), log what they did, and maintenance.sh's
// checkpoint step shrinks the WAL to zero (--mode truncate).
func TestScriptsQuietUnderCron(t *testing.T) {
	bin := binaries(t)
	path := bin + ":/usr/bin:/bin"
	dir := t.TempDir()

	db := filepath.Join(dir, "prod.db")
	fixture.Create(t, db, fixture.Spec{Nodes: 3000, Edges: 3000, Seed: 11, Indexes: []string{"email"}, DeleteEvery: 9})
	walBefore := strings.TrimSpace(newShell(t, bin, dir).ok(`sombra-info --db ` + db + ` --wal-size`))
	if walBefore == "0" {
		t.Fatal("fixture left an empty WAL; the checkpoint step would not be exercised")
	}

	logFile := filepath.Join(dir, "maint.log")
	r := runCron(t, scriptPath(t, "maintenance.sh"), path, "DB_PATH="+db, "BACKUP_DIR="+filepath.Join(dir, "mb"),
		"LOG_FILE="+logFile, "WAL_LIMIT=1", "FRAG_LIMIT=100")
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("maintenance.sh: exit %d, stdout %q, stderr %q\nlog:\n%s", r.code, r.stdout, r.stderr, readLog(t, logFile))
	}
	lg := readLog(t, logFile)
	for _, want := range []string{"checkpointing (truncate)", "maintenance completed successfully"} {
		if !strings.Contains(lg, want) {
			t.Errorf("maintenance log lacks %q:\n%s", want, lg)
		}
	}
	if wal := strings.TrimSpace(newShell(t, bin, dir).ok(`sombra-info --db ` + db + ` --wal-size`)); wal != "0" {
		t.Errorf("WAL is %s bytes after maintenance.sh's checkpoint (was %s); want 0", wal, walBefore)
	}
	if n := len(backups(t, filepath.Join(dir, "mb"))); n != 1 {
		t.Errorf("maintenance.sh made %d backups, want 1", n)
	}

	logFile = filepath.Join(dir, "backup.log")
	r = runCron(t, scriptPath(t, "backup.sh"), path, "DB_PATH="+db, "BACKUP_DIR="+filepath.Join(dir, "bb"), "LOG_FILE="+logFile)
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("backup.sh: exit %d, stdout %q, stderr %q\nlog:\n%s", r.code, r.stdout, r.stderr, readLog(t, logFile))
	}
	if lg := readLog(t, logFile); !strings.Contains(lg, "created and verified") {
		t.Errorf("backup log:\n%s", lg)
	}
	if n := len(backups(t, filepath.Join(dir, "bb"))); n != 1 {
		t.Errorf("backup.sh made %d backups, want 1", n)
	}
}

// TestScriptsOverlappingRuns starts a run of each script and holds it inside
// its first sombra-backup call (a wrapper on PATH waits for a file, then
// runs the real tool); a second run started meanwhile exits 3 at once with
// a message on stderr and in the log, and does nothing; the first then
// finishes quietly, and a third run after it succeeds (the lock went with
// the process).
func TestScriptsOverlappingRuns(t *testing.T) {
	bin := binaries(t)
	for _, script := range []string{"backup.sh", "maintenance.sh"} {
		t.Run(script, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "prod.db")
			fixture.Create(t, db, fixture.Default)
			shim := filepath.Join(dir, "shim")
			if err := os.Mkdir(shim, 0o755); err != nil {
				t.Fatal(err)
			}
			started, release := filepath.Join(dir, "started"), filepath.Join(dir, "release")
			fixture.MustWrite(t, filepath.Join(shim, "sombra-backup"), []byte("#!/bin/sh\n"+
				"if [ ! -e "+started+" ]; then : > "+started+"; while [ ! -e "+release+" ]; do sleep 0.05; done; fi\n"+
				"exec "+filepath.Join(bin, "sombra-backup")+" \"$@\"\n"))
			if err := os.Chmod(filepath.Join(shim, "sombra-backup"), 0o755); err != nil {
				t.Fatal(err)
			}
			path := shim + ":" + bin + ":/usr/bin:/bin"
			logFile, bdir := filepath.Join(dir, "log"), filepath.Join(dir, "backups")
			vars := []string{"DB_PATH=" + db, "BACKUP_DIR=" + bdir, "LOG_FILE=" + logFile, "ON_FAILURE=echo \"$SOMBRA_STEP $SOMBRA_EXIT\" >> " + filepath.Join(dir, "alerts")}

			first, out1, err1 := cronCmd(t, scriptPath(t, script), path, vars...)
			if err := first.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- first.Wait() }()
			deadline := time.Now().Add(60 * time.Second)
			for {
				if _, err := os.Stat(started); err == nil {
					break
				}
				select {
				case err := <-done:
					t.Fatalf("first run ended before its backup step: %v\nstdout %s\nstderr %s\nlog:\n%s", err, out1, err1, readLog(t, logFile))
				default:
				}
				if time.Now().After(deadline) {
					t.Fatal("first run never reached its backup step")
				}
				time.Sleep(20 * time.Millisecond)
			}

			second := runCron(t, scriptPath(t, script), path, vars...)
			if second.code != 3 || second.stdout != "" || !strings.Contains(second.stderr, "another "+script+" run holds "+db) {
				t.Errorf("second run: exit %d (want 3), stdout %q, stderr %q", second.code, second.stdout, second.stderr)
			}
			if lg := readLog(t, logFile); !strings.Contains(lg, "FAILED (lock, exit 3): another "+script+" run holds") {
				t.Errorf("log lacks the second run's reason:\n%s", lg)
			}
			if alerts := readLog(t, filepath.Join(dir, "alerts")); alerts != "lock 3\n" {
				t.Errorf("ON_FAILURE saw %q, want \"lock 3\\n\"", alerts)
			}
			if n := len(backups(t, bdir)); n != 0 {
				t.Errorf("%d backups exist while the first run is still held", n)
			}

			fixture.MustWrite(t, release, nil)
			if code := exitCode(t, <-done); code != 0 || out1.Len() != 0 || err1.Len() != 0 {
				t.Errorf("first run: exit %d, stdout %q, stderr %q\nlog:\n%s", code, out1, err1, readLog(t, logFile))
			}
			if n := len(backups(t, bdir)); n != 1 {
				t.Errorf("%d backups after the first run, want 1", n)
			}
			time.Sleep(1100 * time.Millisecond) // backup names carry the second
			if third := runCron(t, scriptPath(t, script), path, vars...); third.code != 0 || third.stdout != "" || third.stderr != "" {
				t.Errorf("third run: exit %d, stdout %q, stderr %q\nlog:\n%s", third.code, third.stdout, third.stderr, readLog(t, logFile))
			}
		})
	}
}

// TestScriptsFailureReasons: each failing step has its own exit status,
// one line on stderr for cron's mail, the reason in the log, and
// ON_FAILURE runs with the step and status.
func TestScriptsFailureReasons(t *testing.T) {
	bin := binaries(t)
	path := bin + ":/usr/bin:/bin"
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	fixture.Create(t, good, fixture.Default)
	corrupt := filepath.Join(dir, "corrupt.db")
	fixture.Create(t, corrupt, fixture.Default)
	fixture.CorruptPage(t, corrupt, 0, 4096)
	missing := filepath.Join(dir, "missing.db")

	for _, tc := range []struct {
		script, db, step string
		code             int
		extra            []string
	}{
		{"backup.sh", missing, "backup", 11, nil},
		{"backup.sh", good, "prune", 12, []string{"KEEP_DAYS=soon"}},
		{"backup.sh", good, "setup", 10, []string{"LOCK_FILE=" + filepath.Join(dir, "no", "such", "lock")}},
		{"maintenance.sh", missing, "health-check", 11, nil},
		{"maintenance.sh", corrupt, "health-check", 11, nil},
	} {
		t.Run(tc.script+"/"+tc.step+"/"+filepath.Base(tc.db), func(t *testing.T) {
			sub := t.TempDir()
			logFile, alerts := filepath.Join(sub, "log"), filepath.Join(sub, "alerts")
			vars := append([]string{"DB_PATH=" + tc.db, "BACKUP_DIR=" + filepath.Join(sub, "b"), "LOG_FILE=" + logFile,
				`ON_FAILURE=echo "$SOMBRA_STEP $SOMBRA_EXIT" > ` + alerts}, tc.extra...)
			r := runCron(t, scriptPath(t, tc.script), path, vars...)
			if r.code != tc.code || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 ||
				!strings.HasPrefix(r.stderr, tc.script+": "+tc.step+" failed") {
				t.Errorf("exit %d (want %d), stdout %q, stderr %q", r.code, tc.code, r.stdout, r.stderr)
			}
			if lg := readLog(t, logFile); !strings.Contains(lg, "FAILED ("+tc.step+", exit ") {
				t.Errorf("log lacks the reason:\n%s", lg)
			}
			if got, want := readLog(t, alerts), tc.step+" "+strconv.Itoa(tc.code)+"\n"; got != want {
				t.Errorf("ON_FAILURE saw %q, want %q", got, want)
			}
		})
	}

	// A log that cannot be written: setup, exit 10, the reason on stderr.
	r := runCron(t, scriptPath(t, "maintenance.sh"), path, "DB_PATH="+good, "LOG_FILE="+filepath.Join(dir, "no", "log"))
	if r.code != 10 || !strings.Contains(r.stderr, "cannot write log file") {
		t.Errorf("unwritable log: exit %d, stderr %q", r.code, r.stderr)
	}
}
