package backup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/internal/s3test"
)

// Tests of backup directories on object storage, against a real
// S3-compatible server (VersityGW on loopback; see internal/s3test).

const s3Part = 5 << 20 // the smallest part S3 allows: the backups below are multipart

// s3Fixture is a database with a bucket to back it up into.
type s3Fixture struct {
	srv  *s3test.Server
	tmp  string
	path string
	db   *engine.DB
	opts Options
}

func newS3Fixture(t *testing.T) *s3Fixture {
	t.Helper()
	srv := s3test.Start(t)
	srv.MakeBucket(t, "backups")
	tmp := t.TempDir()
	f := &s3Fixture{srv: srv, tmp: tmp, path: filepath.Join(tmp, "prod.db")}
	f.db = openDB(t, f.path, engine.Config{WALAutoCheckpoint: -1})
	t.Cleanup(func() { f.db.Close() })
	// Local staging (uploads, downloads) in a directory the test checks.
	f.opts = Options{S3: S3Config{PartSize: s3Part}, TempDir: filepath.Join(tmp, "stage")}
	if err := os.Mkdir(f.opts.TempDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

// bulk makes the database larger than one part (about 8 MB).
func (f *s3Fixture) bulk(t *testing.T) {
	for i := range 4 {
		addBatch(t, f.db, 100000+i*8000, 8000)
	}
}

func (f *s3Fixture) staged(t *testing.T) []string { return dirFiles(t, f.opts.TempDir) }

func TestS3FullIncrementalPITRRoundTrip(t *testing.T) {
	f := newS3Fixture(t)
	const dir = "s3://backups/prod"
	m := NewBackupManagerWithOptions(f.db, dir, f.opts)
	if err := m.EnableWALArchiving(); err != nil {
		t.Fatal(err)
	}
	at := map[int]time.Time{}
	commit := func(from, to int) {
		for i := from; i <= to; i++ {
			addNodes(t, f.db, i, 1)
			at[i] = time.Now()
		}
	}
	f.bulk(t)
	commit(1, 20)
	full, err := m.CreateFullBackup("full")
	if err != nil {
		t.Fatal(err)
	}
	if full.Bytes <= s3Part || full.Path != "s3://backups/prod/full.backup" {
		t.Fatalf("full backup %d bytes at %s: want a multipart upload to s3://backups/prod/full.backup", full.Bytes, full.Path)
	}
	commit(21, 40)
	if _, err := f.db.CheckpointWithMode(engine.CheckpointRestart); err != nil {
		t.Fatal(err)
	}
	commit(41, 60)
	inc, err := m.CreateIncrementalBackup("inc")
	if err != nil {
		t.Fatal(err)
	}
	if inc.Type != "incremental" || inc.Parent != "full" {
		t.Fatalf("incremental: %+v", inc)
	}
	commit(61, 80)
	ar, err := m.ArchiveWAL()
	if err != nil {
		t.Fatal(err)
	}
	if ar.Remote != "s3://backups/prod/wal" || len(ar.Uploaded) == 0 {
		t.Fatalf("archive run shipped %v to %q", ar.Uploaded, ar.Remote)
	}

	keys := f.srv.Keys(t, "backups", "")
	for _, want := range []string{"prod/full.backup", "prod/full.backup.complete", "prod/inc.backup", "prod/inc.backup.complete", "prod/catalog.json"} {
		if !slices.Contains(keys, want) {
			t.Fatalf("bucket lacks %s: %v", want, keys)
		}
	}
	segs := 0
	for _, k := range keys {
		if strings.HasPrefix(k, "prod/"+uploadsDir) {
			t.Fatalf("lease left after complete uploads: %v", keys)
		}
		if strings.HasPrefix(k, "prod/wal/") {
			segs++
		}
	}
	if segs < 3 {
		t.Fatalf("bucket holds %d archived WAL segments: %v", segs, keys)
	}
	// The local spool keeps the newest segment only, once shipped.
	spool := dirFiles(t, f.path+SpoolSuffix)
	if n := len(slices.DeleteFunc(spool, func(n string) bool { return !strings.HasSuffix(n, ".walseg") })); n != 1 {
		t.Fatalf("spool after shipping: %v", dirFiles(t, f.path+SpoolSuffix))
	}

	list, err := ListBackupsWithOptions(dir, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "full" || list[1].Name != "inc" || !list[1].ChainOK() || list[1].Path != "s3://backups/prod/inc.backup" {
		t.Fatalf("list: %+v", list)
	}
	v, err := Verify(dir, "inc", f.opts)
	if err != nil || !v.OK || !v.HashChecked || !slices.Equal(v.Chain, []string{"full", "inc"}) {
		t.Fatalf("verify: %+v %v", v, err)
	}
	// The verification is recorded in the bucket's catalog.
	list, _ = ListBackupsWithOptions(dir, f.opts)
	if list[1].Verified == nil || !list[1].Verified.OK {
		t.Fatalf("verification not recorded: %+v", list[1])
	}

	target := filepath.Join(f.tmp, "restored.db")
	r, err := Restore(dir, "inc", target, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := seqs(t, target); len(got) != 32000+60 || got[59] != 60 {
		t.Fatalf("restored %d nodes (chain %v)", len(got), r.Chain)
	}
	for _, k := range []int{25, 45, 70} {
		target := filepath.Join(f.tmp, fmt.Sprintf("pitr%d.db", k))
		rr, err := RestoreToTime(dir, at[k], target, f.opts)
		if err != nil {
			t.Fatalf("until after commit %d: %v", k, err)
		}
		got := seqs(t, target)
		if len(got) != 32000+k || got[k-1] != int64(k) || rr.Replay == nil {
			t.Fatalf("until after commit %d: %d nodes, %+v", k, len(got), rr)
		}
	}
	if s := f.staged(t); len(s) != 0 {
		t.Fatalf("local staging left %v", s)
	}

	// Retention works on the bucket as locally: a second full backup, then
	// keep one full chain.
	if _, err := m.CreateFullBackup("full2"); err != nil {
		t.Fatal(err)
	}
	pr, err := Prune(dir, 0, 1, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pr.Deleted, []string{"full", "inc"}) || !slices.Equal(pr.Kept, []string{"full2"}) || len(pr.SegmentsDeleted) == 0 {
		t.Fatalf("prune: %+v", pr)
	}
	if got := listNamesOpts(t, dir, f.opts); !slices.Equal(got, []string{"full2"}) {
		t.Fatalf("after prune: %v", got)
	}
	for _, k := range f.srv.Keys(t, "backups", "prod/") {
		if strings.HasPrefix(k, "prod/full.") || strings.HasPrefix(k, "prod/inc.") {
			t.Fatalf("prune left %s", k)
		}
	}
}

func listNamesOpts(t *testing.T, dir string, o Options) []string {
	t.Helper()
	l, err := ListBackupsWithOptions(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range l {
		out = append(out, b.Name)
	}
	return out
}

// oneLine fails unless err is a single line naming want.
func oneLine(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Fatalf("error spans lines: %q", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Fatalf("error %q does not say %q", msg, w)
		}
	}
}

func TestS3WrongCredentialsAndMissingBucket(t *testing.T) {
	f := newS3Fixture(t)
	addNodes(t, f.db, 1, 5)
	before := mustHash(t, f.db)

	bad := f.opts
	bad.S3.AccessKey, bad.S3.SecretKey = s3test.AccessKey, "wrong-secret"
	_, err := NewBackupManagerWithOptions(f.db, "s3://backups/prod", bad).CreateFullBackup("full")
	if !errors.Is(err, ErrRemote) {
		t.Fatalf("wrong credentials: %v", err)
	}
	oneLine(t, err, "refused the credentials", "AWS_SECRET_ACCESS_KEY")
	_, err = ListBackupsWithOptions("s3://backups/prod", bad)
	oneLine(t, err, "refused the credentials")

	_, err = NewBackupManagerWithOptions(f.db, "s3://nosuchbucket/prod", f.opts).CreateFullBackup("full")
	if !errors.Is(err, ErrRemote) || !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("missing bucket: %v", err)
	}
	oneLine(t, err, "bucket nosuchbucket does not exist")
	_, err = ListBackupsWithOptions("s3://nosuchbucket/prod", f.opts)
	oneLine(t, err, "bucket nosuchbucket does not exist")
	_, err = Restore("s3://nosuchbucket/prod", "full", filepath.Join(f.tmp, "r.db"), f.opts)
	oneLine(t, err, "nosuchbucket")

	if k := f.srv.Keys(t, "backups", ""); len(k) != 0 {
		t.Fatalf("failed backups wrote %v", k)
	}

	// Keys from a profile of a shared credentials file, when the
	// environment has none: the right profile works, another is refused.
	creds := filepath.Join(f.tmp, "credentials")
	ini := fmt.Sprintf("[default]\naws_access_key_id = nobody\naws_secret_access_key = wrong\n\n[sombra]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
		s3test.AccessKey, s3test.SecretKey)
	if err := os.WriteFile(creds, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	t.Setenv("AWS_PROFILE", "sombra")
	if _, err := ListBackupsWithOptions("s3://backups/prod", f.opts); err != nil {
		t.Fatalf("keys from profile sombra: %v", err)
	}
	t.Setenv("AWS_PROFILE", "")
	_, err = ListBackupsWithOptions("s3://backups/prod", f.opts)
	oneLine(t, err, "refused the credentials")
	if s := f.staged(t); len(s) != 0 {
		t.Fatalf("local staging left %v", s)
	}
	if _, err := os.Stat(filepath.Join(f.tmp, "r.db")); err == nil {
		t.Fatal("failed restore created its target")
	}
	if h := mustHash(t, f.db); h != before {
		t.Fatal("database changed")
	}
}

func TestS3AlteredObjectIsNamed(t *testing.T) {
	f := newS3Fixture(t)
	addNodes(t, f.db, 1, 50)
	const dir = "s3://backups/prod"
	m := NewBackupManagerWithOptions(f.db, dir, f.opts)
	if _, err := m.CreateFullBackup("full"); err != nil {
		t.Fatal(err)
	}
	// Alter one byte of a page record in the server's own copy.
	obj := filepath.Join(f.srv.Dir, "backups", "prod", "full.backup")
	b, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	b[HeaderSize+recHdrSize+100] ^= 0xff
	if err := os.WriteFile(obj, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// The download directory of a verify killed earlier (its process gone)
	// is removed by the next one.
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(f.opts.TempDir, fmt.Sprintf(".sombra-verify-%d-123", done.Process.Pid), "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	v, err := Verify(dir, "full", f.opts)
	var ce *engine.CorruptionError
	if !errors.As(err, &ce) || ce.Path != "s3://backups/prod/full.backup" || v.OK {
		t.Fatalf("verify of an altered object: %v", err)
	}
	oneLine(t, err, "s3://backups/prod/full.backup", "altered in the bucket")
	target := filepath.Join(f.tmp, "r.db")
	if _, err := Restore(dir, "full", target, f.opts); !errors.As(err, &ce) {
		t.Fatalf("restore of an altered object: %v", err)
	}
	if _, err := os.Stat(target); err == nil {
		t.Fatal("failed restore created its target")
	}
	list, _ := ListBackupsWithOptions(dir, f.opts)
	if len(list) != 1 || list[0].Verified == nil || list[0].Verified.OK {
		t.Fatalf("failed verification not recorded: %+v", list)
	}
	if s := f.staged(t); len(s) != 0 {
		t.Fatalf("local staging left %v", s)
	}
}

func TestS3ServerStoppedMidUpload(t *testing.T) {
	f := newS3Fixture(t)
	f.bulk(t)
	const dir = "s3://backups/prod"
	m := NewBackupManagerWithOptions(f.db, dir, f.opts)
	var stopped atomic.Bool // two upload threads call the hook
	uploadProgress = func(sent int64) {
		if sent > s3Part && stopped.CompareAndSwap(false, true) { // the first part is on its way
			f.srv.Stop()
		}
	}
	defer func() { uploadProgress = nil }()
	_, err := m.CreateFullBackup("full")
	uploadProgress = nil
	if !stopped.Load() {
		t.Fatal("the upload finished before the server was stopped")
	}
	if !errors.Is(err, ErrRemote) {
		t.Fatalf("upload to a stopped server: %v", err)
	}
	oneLine(t, err, "s3://backups/prod/full.backup", "unreachable")
	if s := f.staged(t); len(s) != 0 {
		t.Fatalf("local staging left %v", s)
	}
	if err := f.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// Nothing is listed; the next prune removes what the upload left.
	if got := listNamesOpts(t, dir, f.opts); len(got) != 0 {
		t.Fatalf("interrupted upload listed: %v", got)
	}
	pruneLeftovers(t, f, dir, "full.backup")
	// And the backup can be taken again.
	if _, err := m.CreateFullBackup("full"); err != nil {
		t.Fatal(err)
	}
	if got := listNamesOpts(t, dir, f.opts); !slices.Equal(got, []string{"full"}) {
		t.Fatalf("after retry: %v", got)
	}
}

// TestS3CancelledMidUpload cancels a backup's context while its upload
// is under way: the transfer stops there (the requests are made under the
// operation's context), the error says so, nothing is listed and no local
// staging is left.
func TestS3CancelledMidUpload(t *testing.T) {
	f := newS3Fixture(t)
	f.bulk(t)
	f.bulk(t) // about 16 MB: four parts, two in flight at a time
	// What a whole upload sends, from a backup into another bucket.
	f.srv.MakeBucket(t, "ref")
	var total atomic.Int64
	uploadProgress = func(sent int64) { total.Store(max(total.Load(), sent)) }
	if _, err := NewBackupManagerWithOptions(f.db, "s3://ref/prod", f.opts).CreateFullBackup("full"); err != nil {
		t.Fatal(err)
	}
	const dir = "s3://backups/prod"
	m := NewBackupManagerWithOptions(f.db, dir, f.opts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelled atomic.Bool
	var last atomic.Int64
	uploadProgress = func(sent int64) {
		last.Store(sent)
		if sent > s3Part && cancelled.CompareAndSwap(false, true) {
			cancel()
		}
	}
	defer func() { uploadProgress = nil }()
	_, err := m.CreateFullBackupContext(ctx, "full")
	uploadProgress = nil
	if !cancelled.Load() {
		t.Fatal("the upload finished before it was cancelled")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled upload: %v", err)
	}
	if sent := last.Load(); sent >= total.Load() {
		t.Fatalf("the whole backup (%d bytes) was sent after the cancel", sent)
	}
	t.Logf("cancelled after %d of %d bytes", last.Load(), total.Load())
	if got := listNamesOpts(t, dir, f.opts); len(got) != 0 {
		t.Fatalf("cancelled upload listed: %v", got)
	}
	if s := f.staged(t); len(s) != 0 {
		t.Fatalf("local staging left %v", s)
	}
	pruneLeftovers(t, f, dir, "full.backup")
}

// pruneLeftovers runs prune and checks it removed the lease, parts and
// object of the interrupted upload of name.
func pruneLeftovers(t *testing.T, f *s3Fixture, dir, name string) {
	t.Helper()
	pr, err := Prune(dir, 0, 1, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pr.TempDeleted, name) {
		t.Fatalf("prune did not clean the interrupted upload: %+v", pr)
	}
	if u := f.srv.Uploads(t, "backups"); len(u) != 0 {
		t.Fatalf("incomplete multipart uploads left: %v", u)
	}
	for _, k := range f.srv.Keys(t, "backups", "") {
		if k != "prod/catalog.json" {
			t.Fatalf("prune left %s", k)
		}
	}
}

// TestS3KilledDuringUpload kills (SIGKILL) a process in the middle of a
// backup's upload: nothing is listed, the database is unchanged, the next
// prune cleans the bucket and the next backup the local staging file.
func TestS3KilledDuringUpload(t *testing.T) {
	f := newS3Fixture(t)
	f.bulk(t)
	before := mustHash(t, f.db)
	f.db.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SOMBRA_BACKUP_TEST_CHILD=s3upload", "SOMBRA_BACKUP_TEST_DB="+f.path,
		"SOMBRA_BACKUP_TEST_TMP="+f.opts.TempDir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "uploading\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q, %v", line, err)
	}
	cmd.Process.Kill() // SIGKILL
	cmd.Wait()

	const dir = "s3://backups/prod"
	if got := listNamesOpts(t, dir, f.opts); len(got) != 0 {
		t.Fatalf("killed upload listed: %v", got)
	}
	if u := f.srv.Uploads(t, "backups"); len(u) == 0 {
		t.Fatal("no multipart upload was in progress when the child was killed")
	}
	if s := f.staged(t); len(s) != 1 {
		t.Fatalf("local staging file of the killed upload: %v", s)
	}
	f.db = openDB(t, f.path, engine.Config{WALAutoCheckpoint: -1})
	if h := mustHash(t, f.db); h != before {
		t.Fatal("database changed")
	}
	pruneLeftovers(t, f, dir, "full.backup")
	m := NewBackupManagerWithOptions(f.db, dir, f.opts)
	if _, err := m.CreateFullBackup("full"); err != nil {
		t.Fatal(err)
	}
	if s := f.staged(t); len(s) != 0 {
		t.Fatalf("the next backup left the killed one's staging file: %v", s)
	}
	if v, err := Verify(dir, "full", f.opts); err != nil || !v.OK {
		t.Fatalf("verify after retry: %v", err)
	}
}

// runS3UploadChild backs the database up into s3://backups/prod and stops for
// good once the first part is on its way, after saying "uploading".
func runS3UploadChild(path, tmp string) int {
	db, err := engine.OpenWithConfig(path, engine.Config{ReadOnly: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var said atomic.Bool // two upload threads call the hook
	uploadProgress = func(sent int64) {
		if sent > s3Part && said.CompareAndSwap(false, true) {
			fmt.Println("uploading")
			time.Sleep(time.Hour) // killed here
		}
	}
	m := NewBackupManagerWithOptions(db, "s3://backups/prod", Options{S3: S3Config{PartSize: s3Part}, TempDir: tmp})
	_, err = m.CreateFullBackup("full")
	fmt.Fprintln(os.Stderr, "backup finished:", err)
	return 1
}

// TestS3PruneAbortsOldUploadsWithoutLease: a multipart upload that has no
// lease (a WAL segment's) is aborted by prune once it is older than any
// upload can run, and left alone before.
func TestS3PruneAbortsOldUploadsWithoutLease(t *testing.T) {
	f := newS3Fixture(t)
	core := minio.Core{Client: f.srv.Client(t)}
	if _, err := core.NewMultipartUpload(context.Background(), "backups", "prod/wal/x.walseg", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	const dir = "s3://backups/prod"
	pr, err := Prune(dir, 0, 1, f.opts)
	if err != nil || len(pr.TempDeleted) != 0 || len(f.srv.Uploads(t, "backups")) != 1 {
		t.Fatalf("prune removed a young upload: %+v %v", pr, err)
	}
	later := f.opts
	later.Now = func() time.Time { return time.Now().Add(staleTemp + time.Hour) }
	pr, err = Prune(dir, 0, 1, later)
	if err != nil || !slices.Equal(pr.TempDeleted, []string{"x.walseg"}) {
		t.Fatalf("prune a day later: %+v %v", pr, err)
	}
	if u := f.srv.Uploads(t, "backups"); len(u) != 0 {
		t.Fatalf("uploads left: %v", u)
	}
}
