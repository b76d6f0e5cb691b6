package backup_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/sombradb/sombra/internal/commands/backup"
	"github.com/sombradb/sombra/internal/commands/fixture"
	"github.com/sombradb/sombra/internal/s3test"
)

// The sombra-backup subcommands on an s3:// backup directory, against a
// real S3-compatible server (VersityGW on loopback).

func TestS3Commands(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket(t, "backups")
	dir, db := newDB(t)
	const bdir = "s3://backups/prod"
	t.Setenv("TMPDIR", t.TempDir()) // the local staging the checks below look at

	ok(t, "archive-wal", "--db", db, "--dir", bdir, "--enable")
	ok(t, "--type", "full", "--db", db, "--output", bdir+"/full_1")
	addNodes(t, db, 20)
	ok(t, "--type", "incremental", "--db", db, "--output", bdir+"/inc_1")

	var l backup.ListResult
	if err := json.Unmarshal([]byte(ok(t, "list", "--dir", bdir, "--json")), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Backups) != 2 || l.Backups[1].Name != "inc_1" || !l.Backups[1].Restorable || l.Backups[1].Path != bdir+"/inc_1.backup" {
		t.Fatalf("list: %+v", l.Backups)
	}
	out := ok(t, "verify", bdir+"/inc_1.backup")
	if !strings.Contains(out, "ok") {
		t.Fatalf("verify: %s", out)
	}
	ok(t, "verify", "--dir", bdir, "full_1")
	target := filepath.Join(dir, "restored.db")
	ok(t, "restore", "--dir", bdir, "--to", target)
	if logicalHash(t, target) != logicalHash(t, db) {
		t.Fatal("restored database differs from the source")
	}
	pitr := filepath.Join(dir, "pitr.db")
	ok(t, "restore", "--dir", bdir, "--until", time.Now().UTC().Add(time.Hour).Format(time.RFC3339), "--allow-earlier", "--to", pitr)
	if logicalHash(t, pitr) != logicalHash(t, db) {
		t.Fatal("point-in-time restore differs from the source")
	}
	ok(t, "prune", "--dir", bdir, "--keep-full", "1")
	if m, _ := filepath.Glob(filepath.Join(os.Getenv("TMPDIR"), "*")); len(m) != 0 {
		t.Fatalf("local staging left %v", m)
	}

	// Failures: one clear line on stderr, exit 1, nothing written.
	for _, c := range []struct {
		env  [2]string
		args []string
		want string
	}{
		{[2]string{}, []string{"--type", "full", "--db", db, "--output", "s3://nosuchbucket/prod/full_2"}, "bucket nosuchbucket does not exist"},
		{[2]string{}, []string{"list", "--dir", "s3://nosuchbucket/prod"}, "bucket nosuchbucket does not exist"},
		{[2]string{"AWS_SECRET_ACCESS_KEY", "wrong"}, []string{"--type", "full", "--db", db, "--output", bdir + "/full_2"}, "refused the credentials"},
		{[2]string{"AWS_SECRET_ACCESS_KEY", "wrong"}, []string{"list", "--dir", bdir}, "refused the credentials"},
		{[2]string{"AWS_ENDPOINT_URL", "http://127.0.0.1:1"}, []string{"--type", "full", "--db", db, "--output", bdir + "/full_2"}, "unreachable"},
	} {
		if c.env[0] != "" {
			old := os.Getenv(c.env[0])
			os.Setenv(c.env[0], c.env[1])
			_, errOut, code := run(t, c.args...)
			os.Setenv(c.env[0], old)
			checkOneLine(t, c.args, errOut, code, c.want)
		} else {
			_, errOut, code := run(t, c.args...)
			checkOneLine(t, c.args, errOut, code, c.want)
		}
	}
	for _, k := range srv.Keys(t, "backups", "") {
		if strings.Contains(k, "full_2") {
			t.Fatalf("a failed backup wrote %s", k)
		}
	}
	_, errOut, code := run(t, "--type", "full", "--db", db, "--output", "s3://backups")
	if code != 2 || !strings.Contains(errOut, "give a backup name") {
		t.Fatalf("--output with no name: exit %d, %q", code, errOut)
	}
}

func checkOneLine(t *testing.T, args []string, errOut string, code int, want string) {
	t.Helper()
	if code != 1 || !strings.Contains(errOut, want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("%v: exit %d, stderr %q (want one line saying %q)", args, code, errOut, want)
	}
}

// TestBackupScriptS3 runs scripts/backup.sh with BACKUP_DIR=s3://...: a
// full backup into the empty prefix, then an incremental one, both
// verified.
func TestBackupScriptS3(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket(t, "backups")
	dir := t.TempDir()
	db := filepath.Join(dir, "production.db")
	fixture.Create(t, db, fixture.Default)
	env := []string{"DB_PATH=" + db, "BACKUP_DIR=s3://backups/sombra", "LOG_FILE=" + filepath.Join(dir, "backup.log")}
	out, code := script(t, "backup.sh", env...)
	if code != 0 || !strings.Contains(out, "created and verified") {
		t.Fatalf("backup.sh: exit %d\n%s", code, out)
	}
	addNodes(t, db, 10)
	time.Sleep(1100 * time.Millisecond) // the script names backups by the second
	if out, code := script(t, "backup.sh", env...); code != 0 {
		t.Fatalf("backup.sh, second run: exit %d\n%s", code, out)
	}
	v := verifiedBackups(t, "s3://backups/sombra")
	if len(v) != 2 || v[0].Type != "full" || (v[1].Type != "incremental" && time.Now().Weekday() != time.Sunday) {
		t.Fatalf("after two runs: %+v", v)
	}
}

// TestKillDuringS3Upload SIGKILLs sombra-backup while it uploads to the
// bucket (its lease object is there): list shows nothing, the database is
// untouched, the next prune removes what the upload left, and the backup
// can be taken again.
func TestKillDuringS3Upload(t *testing.T) {
	bin := filepath.Join(binaries(t), "sombra-backup")
	srv := s3test.Start(t)
	srv.MakeBucket(t, "backups")
	dir := t.TempDir()
	t.Setenv("TMPDIR", t.TempDir())
	db := filepath.Join(dir, "big.db")
	fixture.Create(t, db, fixture.Spec{Nodes: 50000, Edges: 50000, Seed: 3, Checkpoint: "truncate"})
	before := sha(t, db)
	const bdir = "s3://backups/prod"

	killed := false
	for try := 0; try < 5 && !killed; try++ {
		cmd := exec.Command(bin, "--type", "full", "--db", db, "--output", bdir+"/full")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
	poll:
		for {
			select {
			case err := <-done:
				t.Logf("try %d: the backup finished (%v) before its upload was seen; again", try, err)
				if out, err := exec.Command(bin, "prune", "--dir", bdir, "--keep-days", "1").CombinedOutput(); err != nil {
					t.Fatalf("prune: %v\n%s", err, out)
				}
				srv.Client(t).RemoveObject(context.Background(), "backups", "prod/full.backup.complete", minio.RemoveObjectOptions{})
				break poll
			default:
			}
			for _, k := range srv.Keys(t, "backups", "prod/.uploads/") {
				if strings.HasPrefix(k, "prod/.uploads/full.backup.") {
					cmd.Process.Signal(syscall.SIGKILL)
					<-done
					killed = true
					break poll
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	if !killed {
		t.Fatal("no upload was caught in flight in 5 tries")
	}
	if sha(t, db) != before {
		t.Fatal("the killed backup changed the database file")
	}
	var l backup.ListResult
	if err := json.Unmarshal([]byte(ok(t, "list", "--dir", bdir, "--json")), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Backups) != 0 {
		t.Fatalf("the killed upload is listed: %+v", l.Backups)
	}
	var pr backup.PruneResult
	if err := json.Unmarshal([]byte(ok(t, "prune", "--dir", bdir, "--keep-days", "1", "--json")), &pr); err != nil {
		t.Fatal(err)
	}
	if len(pr.TempDeleted) != 1 || pr.TempDeleted[0] != "full.backup" {
		t.Fatalf("prune after the kill: %+v", pr)
	}
	if u := srv.Uploads(t, "backups"); len(u) != 0 {
		t.Fatalf("multipart uploads left: %v", u)
	}
	for _, k := range srv.Keys(t, "backups", "") {
		if k != "prod/catalog.json" {
			t.Fatalf("prune left %s", k)
		}
	}
	ok(t, "--type", "full", "--db", db, "--output", bdir+"/full")
	ok(t, "verify", bdir+"/full.backup")
	if m, _ := filepath.Glob(filepath.Join(os.Getenv("TMPDIR"), "*")); len(m) != 0 {
		t.Fatalf("local staging left %v", m)
	}
}
