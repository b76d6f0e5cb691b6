package backup

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/crc64nvme"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/procs"
	"github.com/sombradb/sombra/engine/vfs"
)

// S3Config says how to reach S3-compatible object storage. Every field
// has a default from the environment, as the AWS tools read it.
type S3Config struct {
	// Endpoint is the server's URL (http://127.0.0.1:7070) or host
	// (https assumed). Default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL,
	// else AWS's regional endpoint. An IP address or localhost endpoint is
	// addressed path-style (http://host/bucket/key), others as the server
	// prefers.
	Endpoint string
	// Region defaults to $AWS_REGION, $AWS_DEFAULT_REGION, else us-east-1.
	Region string
	// AccessKey and SecretKey default to $AWS_ACCESS_KEY_ID and
	// $AWS_SECRET_ACCESS_KEY, else the profile's keys in the shared
	// credentials file (~/.aws/credentials or $AWS_SHARED_CREDENTIALS_FILE).
	AccessKey, SecretKey string
	// Profile defaults to $AWS_PROFILE, else "default".
	Profile string
	// PartSize is the size of a multipart upload's parts (default 16 MiB,
	// at least 5 MiB as S3 requires). Memory used by an upload is bounded
	// by it: parts are read from the finished local file by offset.
	PartSize uint64
}

const (
	defaultPartSize = 16 << 20
	minPartSize     = 5 << 20
	// markerSuffix names the object that makes a backup visible: written
	// last, after the backup object was uploaded and its checksum checked.
	markerSuffix = ".complete"
	// uploadsDir holds a lease object per upload in progress, so that the
	// next prune can tell an interrupted upload from a running one.
	uploadsDir = ".uploads"
	// s3Timeout bounds one request (a part is at most PartSize bytes).
	s3Timeout = 5 * time.Minute
)

// marker is the content of NAME.backup.complete.
type marker struct {
	Size     int64     `json:"size"`
	CRC32C   string    `json:"crc32c"` // of the whole object, hex
	Uploaded time.Time `json:"uploaded"`
	Host     string    `json:"host"`
}

// activeUploads holds the leases of this process's uploads in progress
// (bucket/key), which a prune in the same process must leave alone.
var activeUploads sync.Map

// lease is the content of .uploads/NAME.HOST.PID: an upload in progress.
type lease struct {
	Key     string    `json:"key"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
}

// s3Store is a backup directory in an S3-compatible bucket. minio-go is
// the client: one module (the AWS SDK brings a dozen), streamed multipart
// uploads from a ReaderAt without buffering parts, the AWS credential
// chain (environment, shared credentials file and profile), and
// full-object CRC32C checksums.
type s3Store struct {
	c        *minio.Client
	endpoint string
	partSize uint64
	fs       *s3FS
	base     context.Context // the operation's context (nil: none)
}

func envFirst(keys ...string) string {
	for _, k := range keys {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return ""
}

func newS3Store(cfg S3Config) (*s3Store, error) {
	region := cfg.Region
	if region == "" {
		region = envFirst("AWS_REGION", "AWS_DEFAULT_REGION")
	}
	if region == "" {
		region = "us-east-1"
	}
	ep := cfg.Endpoint
	if ep == "" {
		ep = envFirst("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	}
	if ep == "" {
		ep = "https://s3." + region + ".amazonaws.com"
	}
	if !strings.Contains(ep, "://") {
		ep = "https://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("S3 endpoint %q: want http(s)://host[:port] (S3Config.Endpoint or AWS_ENDPOINT_URL): %w", ep, common.ErrInvalid)
	}
	var creds *credentials.Credentials
	if cfg.AccessKey != "" || cfg.SecretKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	} else {
		profile := cfg.Profile
		if profile == "" {
			profile = os.Getenv("AWS_PROFILE")
		}
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{Profile: profile},
		})
	}
	lookup := minio.BucketLookupAuto
	if h := u.Hostname(); h == "localhost" || net.ParseIP(h) != nil {
		lookup = minio.BucketLookupPath // no DNS name per bucket on a bare address
	}
	c, err := minio.New(u.Host, &minio.Options{Creds: creds, Secure: u.Scheme == "https", Region: region,
		BucketLookup: lookup, MaxRetries: 3})
	if err != nil {
		return nil, fmt.Errorf("S3 client for %s: %w", ep, err)
	}
	ps := cfg.PartSize
	if ps == 0 {
		ps = defaultPartSize
	}
	ps = max(ps, minPartSize)
	s := &s3Store{c: c, endpoint: u.Scheme + "://" + u.Host, partSize: ps}
	s.fs = &s3FS{s: s}
	return s, nil
}

// splitS3 turns s3://bucket/a/b (or s3:/bucket/a/b) into bucket and key.
func splitS3(p string) (string, string, error) {
	rest := strings.TrimPrefix(canonS3(p), "s3://")
	bucket, key, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("%s: no bucket (want s3://bucket/prefix): %w", p, common.ErrInvalid)
	}
	return bucket, strings.Trim(path.Clean("/"+key), "/"), nil
}

// withContext returns a view of the store whose requests are made under
// ctx (nil: none); the client is shared.
func (s *s3Store) withContext(ctx context.Context) *s3Store {
	if ctx == nil || ctx == s.base {
		return s
	}
	b := *s
	b.base = ctx
	b.fs = &s3FS{s: &b}
	return &b
}

// parent is the context requests are made under.
func (s *s3Store) parent() context.Context {
	if s.base == nil {
		return context.Background()
	}
	return s.base
}

// ctx bounds one request: the operation's context, and s3Timeout.
func (s *s3Store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.parent(), s3Timeout)
}

// s3Err turns a client error into one line that says what to do, wrapping
// ErrRemote (and ErrNotFound for a missing bucket, os.ErrNotExist for a
// missing object).
func (s *s3Store) s3Err(op, p string, err error) error {
	p = canonS3(p)
	// The operation was interrupted: that, not the server, is the reason
	// (and callers test it with errors.Is(err, context.Canceled)).
	if cerr := s.parent().Err(); cerr != nil {
		return fmt.Errorf("%s %s: %w", op, p, cerr)
	}
	bucket, _, _ := splitS3(p)
	er := minio.ToErrorResponse(err)
	switch er.Code {
	case minio.NoSuchBucket:
		return fmt.Errorf("%s: bucket %s does not exist on %s (create it first): %w: %w", p, bucket, s.endpoint, ErrRemote, common.ErrNotFound)
	case minio.NoSuchKey, "NotFound":
		return fmt.Errorf("%s: %w", p, os.ErrNotExist)
	// XAdminUserNotFound: VersityGW's answer to an unknown access key.
	case minio.InvalidAccessKeyID, "SignatureDoesNotMatch", minio.AccessDenied, "XAdminUserNotFound", "InvalidToken", "ExpiredToken":
		return fmt.Errorf("%s %s: %s refused the credentials (%s; check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE): %w",
			op, p, s.endpoint, er.Code, ErrRemote)
	}
	if er.StatusCode == 403 {
		return fmt.Errorf("%s %s: %s refused the request (%s; check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE): %w",
			op, p, s.endpoint, er.Code, ErrRemote)
	}
	if er.StatusCode == 404 && er.Code == "" {
		return fmt.Errorf("%s: %w", p, os.ErrNotExist)
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: S3 server %s unreachable (%v): %w", op, p, s.endpoint, innermost(err), ErrRemote)
	}
	return fmt.Errorf("%s %s: %v: %w", op, p, err, ErrRemote)
}

func innermost(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

func (s *s3Store) FS() vfs.FS   { return s.fs }
func (s *s3Store) Remote() bool { return true }

// checkBucket fails clearly when the bucket is missing or the credentials
// are refused, before anything is written.
func (s *s3Store) checkBucket(dir string) error {
	bucket, _, err := splitS3(dir)
	if err != nil {
		return err
	}
	cx, cancel := s.ctx()
	defer cancel()
	ok, err := s.c.BucketExists(cx, bucket)
	if err != nil {
		return s.s3Err("check bucket of", dir, err)
	}
	if !ok {
		return fmt.Errorf("%s: bucket %s does not exist on %s (create it first): %w: %w", canonS3(dir), bucket, s.endpoint, ErrRemote, common.ErrNotFound)
	}
	return nil
}

func (s *s3Store) put(p string, data []byte) error {
	bucket, key, err := splitS3(p)
	if err != nil {
		return err
	}
	cx, cancel := s.ctx()
	defer cancel()
	_, err = s.c.PutObject(cx, bucket, key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/json", SendContentMd5: true})
	if err != nil {
		return s.s3Err("upload", p, err)
	}
	return nil
}

func (s *s3Store) get(p string, limit int64) ([]byte, error) {
	bucket, key, err := splitS3(p)
	if err != nil {
		return nil, err
	}
	cx, cancel := s.ctx()
	defer cancel()
	o, err := s.c.GetObject(cx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.s3Err("download", p, err)
	}
	defer o.Close()
	b, err := io.ReadAll(io.LimitReader(o, limit+1))
	if err != nil {
		return nil, s.s3Err("download", p, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: implausibly large: %w", canonS3(p), common.ErrCorrupt)
	}
	return b, nil
}

func (s *s3Store) remove(p string) error {
	bucket, key, err := splitS3(p)
	if err != nil {
		return err
	}
	cx, cancel := s.ctx()
	defer cancel()
	if err := s.c.RemoveObject(cx, bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return s.s3Err("delete", p, err)
	}
	return nil
}

func (s *s3Store) PutFile(p string, data []byte) error { return s.put(p, data) }

// sums are the checksums of a whole local file: CRC32C (Castagnoli),
// recorded in the marker and checked on download, and CRC64NVME, the
// full-object checksum S3 servers keep by default, compared after upload.
type sums struct {
	crc32c uint32
	crc64  uint64
	size   int64
}

func fileSums(f *os.File) (sums, error) {
	h32 := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	h64 := crc64nvme.New()
	n, err := io.Copy(io.MultiWriter(h32, h64), io.NewSectionReader(f, 0, 1<<62))
	return sums{crc32c: h32.Sum32(), crc64: h64.Sum64(), size: n}, err
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// Publish uploads the finished local file tmp to p: a lease object first
// (so that a prune can tell the upload is running), then the object itself
// (multipart above the part size, two parts in flight, each streamed from
// the file by offset: no part is held in memory; the payload is signed in
// chunks, SigV4 streaming), then a check that the stored object has the
// local file's size and full-object checksum, then the marker that makes
// it visible, and last the lease is removed. An interrupted upload leaves no marker: list never
// shows it, and the next prune removes what it left. tmp is removed.
func (s *s3Store) Publish(tmp, p string) error {
	defer os.Remove(tmp)
	bucket, key, err := splitS3(p)
	if err != nil {
		return err
	}
	// A republished name (--force) is invisible while it is replaced.
	if err := s.remove(p + markerSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	dir, base := path.Split(key)
	leaseKey := path.Join(dir, uploadsDir, fmt.Sprintf("%s.%s.%d", base, hostname(), os.Getpid()))
	lb, _ := json.Marshal(lease{Key: key, Host: hostname(), PID: os.Getpid(), Started: time.Now().UTC()})
	if err := s.put("s3://"+bucket+"/"+leaseKey, lb); err != nil {
		return err
	}
	activeUploads.Store(bucket+"/"+leaseKey, true)
	defer activeUploads.Delete(bucket + "/" + leaseKey)
	// On failure the lease stays: the next prune removes the parts with it.
	sum, err := s.uploadSum(tmp, p)
	if err != nil {
		return err
	}
	mb, _ := json.Marshal(marker{Size: sum.size, CRC32C: fmt.Sprintf("%08x", sum.crc32c), Uploaded: time.Now().UTC(), Host: hostname()})
	if err := s.put(p+markerSuffix, mb); err != nil {
		return err
	}
	if err := s.remove("s3://" + bucket + "/" + leaseKey); err != nil {
		return err
	}
	return nil
}

// upload copies the local file local to p and checks the stored copy (see
// Publish); an object appears in S3 whole or not at all.
func (s *s3Store) upload(local, p string) error {
	_, err := s.uploadSum(local, p)
	return err
}

func (s *s3Store) uploadSum(local, p string) (sums, error) {
	bucket, key, err := splitS3(p)
	if err != nil {
		return sums{}, err
	}
	f, err := os.Open(local)
	if err != nil {
		return sums{}, fmt.Errorf("open %s: %w", local, err)
	}
	defer f.Close()
	sum, err := fileSums(f)
	if err != nil {
		return sums{}, fmt.Errorf("read %s: %w", local, err)
	}
	size := sum.size
	cx, cancel := context.WithCancel(s.parent())
	defer cancel()
	po := minio.PutObjectOptions{
		ContentType:  "application/octet-stream",
		PartSize:     s.partSize,
		NumThreads:   2,
		AutoChecksum: minio.ChecksumCRC32C,
	}
	if uploadProgress != nil {
		po.Progress = &uploadCounter{fn: uploadProgress}
	}
	_, err = s.c.PutObject(cx, bucket, key, io.NewSectionReader(f, 0, size), size, po)
	if err != nil {
		return sums{}, s.s3Err("upload", p, err)
	}
	if err := s.checkUploaded(bucket, key, p, sum); err != nil {
		return sums{}, err
	}
	return sum, nil
}

// uploadProgress, when set (by tests), is called with the bytes sent so
// far as an upload proceeds: tests stop the server or kill the process
// mid-upload from it.
var uploadProgress func(sent int64)

// uploadCounter is the io.Reader minio-go advances as it sends bytes.
type uploadCounter struct {
	mu   sync.Mutex
	sent int64
	fn   func(int64)
}

func (p *uploadCounter) Read(b []byte) (int, error) {
	p.mu.Lock()
	p.sent += int64(len(b))
	n := p.sent
	p.mu.Unlock()
	p.fn(n)
	return len(b), nil
}

// checkUploaded compares the stored object's size and full-object
// checksum (CRC64NVME or CRC32C, whichever the server keeps) with the
// local file's. A server that keeps neither gets the object read back and
// summed.
func (s *s3Store) checkUploaded(bucket, key, p string, sum sums) error {
	size := sum.size
	cx, cancel := s.ctx()
	defer cancel()
	st, err := s.c.StatObject(cx, bucket, key, minio.StatObjectOptions{Checksum: true})
	if err != nil {
		return s.s3Err("check upload of", p, err)
	}
	if st.Size != size {
		return fmt.Errorf("%s: uploaded %d bytes, the server stored %d: %w: %w", canonS3(p), size, st.Size, ErrRemote, common.ErrCorrupt)
	}
	if c := st.ChecksumCRC64NVME; c != "" && !strings.Contains(c, "-") {
		if raw, err := base64.StdEncoding.DecodeString(c); err == nil && len(raw) == 8 {
			if got := binary.BigEndian.Uint64(raw); got != sum.crc64 {
				return fmt.Errorf("%s: the server's CRC64NVME %016x differs from the uploaded file's %016x: %w: %w", canonS3(p), got, sum.crc64, ErrRemote, common.ErrCorrupt)
			}
			return nil
		}
	}
	if c := st.ChecksumCRC32C; c != "" && !strings.Contains(c, "-") {
		if raw, err := base64.StdEncoding.DecodeString(c); err == nil && len(raw) == 4 {
			if got := binary.BigEndian.Uint32(raw); got != sum.crc32c {
				return fmt.Errorf("%s: the server's CRC32C %08x differs from the uploaded file's %08x: %w: %w", canonS3(p), got, sum.crc32c, ErrRemote, common.ErrCorrupt)
			}
			return nil
		}
	}
	got, n, err := s.objectCRC32C(bucket, key, p)
	if err != nil {
		return err
	}
	if n != size || got != sum.crc32c {
		return fmt.Errorf("%s: read back %d bytes with CRC32C %08x, uploaded %d with %08x: %w: %w", canonS3(p), n, got, size, sum.crc32c, ErrRemote, common.ErrCorrupt)
	}
	return nil
}

func (s *s3Store) objectCRC32C(bucket, key, p string) (uint32, int64, error) {
	cx, cancel := s.ctx()
	defer cancel()
	o, err := s.c.GetObject(cx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return 0, 0, s.s3Err("read back", p, err)
	}
	defer o.Close()
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	n, err := io.Copy(h, o)
	if err != nil {
		return 0, 0, s.s3Err("read back", p, err)
	}
	return h.Sum32(), n, nil
}

// readMarker returns the marker of a published object.
func (s *s3Store) readMarker(p string) (*marker, error) {
	b, err := s.get(p+markerSuffix, 1<<16)
	if err != nil {
		return nil, err
	}
	var m marker
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, &common.CorruptionError{Path: canonS3(p) + markerSuffix, Page: 0, Offset: -1, Reason: "unreadable upload marker: " + err.Error()}
	}
	return &m, nil
}

// Fetch downloads p to the local file dst, streaming, and checks that it
// has the size and CRC32C recorded at upload (by the marker; WAL segments
// and other unmarked objects are checked by their own format when read).
// An object altered in the bucket fails with a *common.CorruptionError
// naming it.
func (s *s3Store) Fetch(p, dst string) error {
	bucket, key, err := splitS3(p)
	if err != nil {
		return err
	}
	var m *marker
	if strings.HasSuffix(key, Ext) {
		if m, err = s.readMarker(p); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	ok := false
	defer func() {
		f.Close()
		if !ok {
			os.Remove(dst)
		}
	}()
	cx, cancel := context.WithCancel(s.parent())
	defer cancel()
	o, err := s.c.GetObject(cx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return s.s3Err("download", p, err)
	}
	defer o.Close()
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	n, err := io.Copy(io.MultiWriter(f, h), o)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("write %s: %w", dst, err)
		}
		return s.s3Err("download", p, err)
	}
	if m != nil {
		if n != m.Size || fmt.Sprintf("%08x", h.Sum32()) != m.CRC32C {
			return &common.CorruptionError{Path: canonS3(p), Page: 0, Offset: -1,
				Reason: fmt.Sprintf("object altered in the bucket: %d bytes with CRC32C %08x, uploaded as %d bytes with CRC32C %s", n, h.Sum32(), m.Size, m.CRC32C)}
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dst, err)
	}
	ok = true
	return nil
}

// cleanInterrupted removes what interrupted uploads left in dir: for each
// lease whose process is gone (same host) or that is older than
// staleTemp, the incomplete multipart upload, an object that got no
// marker, and the lease. It returns the keys removed.
func (s *s3Store) cleanInterrupted(dir string, now time.Time) ([]string, error) {
	bucket, prefix, err := splitS3(dir)
	if err != nil {
		return nil, err
	}
	lp := path.Join(prefix, uploadsDir) + "/"
	if prefix == "" {
		lp = uploadsDir + "/"
	}
	cx, cancel := s.ctx()
	defer cancel()
	var out []string
	host := hostname()
	for obj := range s.c.ListObjects(cx, bucket, minio.ListObjectsOptions{Prefix: lp, Recursive: true}) {
		if obj.Err != nil {
			return out, s.s3Err("list", dir+"/"+uploadsDir, obj.Err)
		}
		lpath := "s3://" + bucket + "/" + obj.Key
		b, err := s.get(lpath, 1<<16)
		if err != nil {
			return out, err
		}
		var l lease
		if json.Unmarshal(b, &l) != nil || l.Key == "" {
			l = lease{Started: obj.LastModified}
		}
		var running bool
		switch {
		case l.Host != host:
			running = now.Sub(l.Started) < staleTemp // another machine's: only when old
		case l.PID == os.Getpid():
			_, running = activeUploads.Load(bucket + "/" + obj.Key)
		default:
			running = procs.Alive(l.PID)
		}
		if running {
			continue
		}
		if l.Key != "" {
			if err := s.c.RemoveIncompleteUpload(cx, bucket, l.Key); err != nil && minio.ToErrorResponse(err).Code != minio.NoSuchUpload {
				return out, s.s3Err("abort upload of", "s3://"+bucket+"/"+l.Key, err)
			}
			if _, err := s.readMarker("s3://" + bucket + "/" + l.Key); errors.Is(err, os.ErrNotExist) {
				if err := s.remove("s3://" + bucket + "/" + l.Key); err != nil && !errors.Is(err, os.ErrNotExist) {
					return out, err
				}
			}
			out = append(out, path.Base(l.Key))
		}
		if err := s.remove(lpath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return out, err
		}
	}
	// Multipart uploads that lost their lease (a WAL segment's upload
	// takes none), once older than any upload can run.
	mp := prefix + "/"
	if prefix == "" {
		mp = ""
	}
	for u := range s.c.ListIncompleteUploads(cx, bucket, mp, true) {
		if u.Err != nil {
			return out, s.s3Err("list uploads in", dir, u.Err)
		}
		if now.Sub(u.Initiated) < staleTemp {
			continue
		}
		if err := s.c.RemoveIncompleteUpload(cx, bucket, u.Key); err != nil && minio.ToErrorResponse(err).Code != minio.NoSuchUpload {
			return out, s.s3Err("abort upload of", "s3://"+bucket+"/"+u.Key, err)
		}
		out = append(out, path.Base(u.Key))
	}
	return out, nil
}

// s3FS is the read side of an s3Store as a vfs.FS: ReadAt is a ranged GET,
// ReadDir a listing. A NAME.backup object exists for it only once its
// marker does, so an upload in progress or interrupted is never listed or
// read as a backup. Writing goes through Publish and PutFile instead.
type s3FS struct{ s *s3Store }

type s3Info struct {
	name string
	size int64
	mod  time.Time
	dir  bool
}

func (i s3Info) Name() string { return i.name }
func (i s3Info) Size() int64  { return i.size }
func (i s3Info) Mode() os.FileMode {
	if i.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (i s3Info) ModTime() time.Time         { return i.mod }
func (i s3Info) IsDir() bool                { return i.dir }
func (i s3Info) Sys() any                   { return nil }
func (i s3Info) Type() fs.FileMode          { return i.Mode().Type() }
func (i s3Info) Info() (fs.FileInfo, error) { return i, nil }

func (f *s3FS) Stat(name string) (os.FileInfo, error) {
	bucket, key, err := splitS3(name)
	if err != nil {
		return nil, err
	}
	cx, cancel := f.s.ctx()
	defer cancel()
	st, err := f.s.c.StatObject(cx, bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return nil, f.s.s3Err("stat", name, err)
	}
	if strings.HasSuffix(key, Ext) {
		m, err := f.s.readMarker(name)
		if err != nil {
			return nil, err
		}
		if m.Size != st.Size {
			return nil, &common.CorruptionError{Path: canonS3(name), Page: 0, Offset: -1,
				Reason: fmt.Sprintf("object altered in the bucket: %d bytes, uploaded as %d", st.Size, m.Size)}
		}
	}
	return s3Info{name: path.Base(key), size: st.Size, mod: st.LastModified}, nil
}

func (f *s3FS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	if flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND) != 0 {
		return nil, fmt.Errorf("open %s for writing: objects are uploaded whole: %w", canonS3(name), errors.ErrUnsupported)
	}
	st, err := f.Stat(name)
	if err != nil {
		return nil, err
	}
	bucket, key, _ := splitS3(name)
	return &s3File{s: f.s, name: canonS3(name), bucket: bucket, key: key, info: st.(s3Info)}, nil
}

func (f *s3FS) Remove(name string) error {
	// The marker goes first: a half-done removal leaves an invisible
	// object (removed by the next prune), never a listed, missing one.
	if strings.HasSuffix(name, Ext) {
		if err := f.s.remove(name + markerSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return f.s.remove(name)
}

func (f *s3FS) Rename(oldpath, newpath string) error {
	return fmt.Errorf("rename %s: %w", canonS3(newpath), errors.ErrUnsupported)
}

// SyncDir and MkdirAll have nothing to do: an object is durable once the
// server acknowledged it, and prefixes need no creation.
func (f *s3FS) SyncDir(string) error               { return nil }
func (f *s3FS) MkdirAll(string, os.FileMode) error { return nil }

func (f *s3FS) ReadDir(name string) ([]os.DirEntry, error) {
	bucket, prefix, err := splitS3(name)
	if err != nil {
		return nil, err
	}
	if prefix != "" {
		prefix += "/"
	}
	cx, cancel := f.s.ctx()
	defer cancel()
	var infos []s3Info
	markers := map[string]bool{}
	for obj := range f.s.c.ListObjects(cx, bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if obj.Err != nil {
			return nil, f.s.s3Err("list", name, obj.Err)
		}
		n := strings.TrimPrefix(obj.Key, prefix)
		if strings.HasSuffix(n, "/") {
			infos = append(infos, s3Info{name: strings.TrimSuffix(n, "/"), dir: true})
			continue
		}
		if strings.HasSuffix(n, Ext+markerSuffix) {
			markers[strings.TrimSuffix(n, markerSuffix)] = true
			continue
		}
		infos = append(infos, s3Info{name: n, size: obj.Size, mod: obj.LastModified})
	}
	var out []os.DirEntry
	for _, i := range infos {
		if !i.dir && strings.HasSuffix(i.name, Ext) && !markers[i.name] {
			continue // not complete: being uploaded, or interrupted
		}
		out = append(out, i)
	}
	slices.SortFunc(out, func(a, b os.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// s3File reads one object by ranged GETs.
type s3File struct {
	s           *s3Store
	name        string
	bucket, key string
	info        s3Info
}

func (f *s3File) ReadAt(p []byte, off int64) (int, error) {
	if off >= f.info.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), f.info.size-off)
	opts := minio.GetObjectOptions{}
	if err := opts.SetRange(off, off+want-1); err != nil {
		return 0, err
	}
	cx, cancel := f.s.ctx()
	defer cancel()
	o, err := f.s.c.GetObject(cx, f.bucket, f.key, opts)
	if err != nil {
		return 0, f.s.s3Err("read", f.name, err)
	}
	defer o.Close()
	n, err := io.ReadFull(o, p[:want])
	if err != nil {
		return n, f.s.s3Err("read", f.name, err)
	}
	if want < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

func (f *s3File) WriteAt([]byte, int64) (int, error) {
	return 0, fmt.Errorf("write %s: %w", f.name, errors.ErrUnsupported)
}
func (f *s3File) Sync() error     { return nil }
func (f *s3File) Datasync() error { return nil }
func (f *s3File) Truncate(int64) error {
	return fmt.Errorf("truncate %s: %w", f.name, errors.ErrUnsupported)
}
func (f *s3File) Stat() (os.FileInfo, error) { return f.info, nil }
func (f *s3File) Close() error               { return nil }
func (f *s3File) Name() string               { return f.name }
func (f *s3File) Fd() uintptr                { return ^uintptr(0) }

// Lock and Unlock: an object has no advisory locks (a bucket's writers
// are kept apart by the local catalog directory's lock).
func (f *s3File) Lock() error {
	return fmt.Errorf("lock %s: %w", f.name, errors.ErrUnsupported)
}
func (f *s3File) Unlock() error { return nil }
