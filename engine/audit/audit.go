// Package audit is Sombra's audit log: an append-only JSON-lines file with
// one record per database operation, chained by HMAC-SHA256 (keyed with
// $SOMBRA_AUDIT_KEY or Options.Key; plain SHA-256 without a key) so that
// editing, removing, inserting or reordering records is detected by
// Verify, and anchored in the database so that cutting records from the
// end is detected too.
//
//	a, err := audit.NewAuditLogger("/var/lib/sombra/audit.log") // key from $SOMBRA_AUDIT_KEY
//	a.LogOperations([]string{"node_create", "edge_create", "node_delete", "transaction_commit"})
//	db.SetAuditor(a)
//	...
//	recs, err := a.QueryOperations(time.Now().Add(-24*time.Hour), time.Now(), audit.User("alice"))
//
// # Format
//
// Each line is one JSON object:
//
//	{"seq":7,"time":"2025-01-02T15:04:05.123456789Z","user":"bob","op":"node_delete",
//	 "target":"node:5","ok":false,"error":"...","prev":"<hex>","hash":"<hex>"}
//
// seq counts records from 1; prev is the previous record's hash (64 zeros
// for the first); hash is the HMAC-SHA256 under the key (SHA-256 without
// one) of the line's bytes up to, but not including, its `,"hash":...`
// suffix, with a closing brace appended. So every byte of a record is
// covered by its hash, and every record's hash by the next record. Without
// the key nobody can rewrite a record and recompute the chain; without a
// key anyone can, so an unkeyed chain only shows accidental damage.
//
// # Anchoring the head
//
// What a chain cannot show by itself is records cut from its end. The
// logger is an engine.AuditAnchorer: at every write commit the engine
// records the log's last durable record (sequence and hash) in the
// database, in the committing transaction. VerifyFile(path,
// AgainstDatabase(db)) then fails when the log ends before that record or
// holds another one there. The records written after the last commit's
// anchor (that commit's own transaction_commit record, later rollbacks,
// denials and reads) are not covered until the next commit; someone able
// to write both the log and the database file can roll both back
// together, which only a copy of LastHash kept elsewhere (another system's
// log) defeats.
//
// Reads are recorded only when asked (Options.AuditReads): op "read", one
// record per read operation.
//
// # Durability
//
// A record is written with one write(2) at the end of the file, so a crash
// leaves at most one incomplete last line; NewAuditLogger cuts it off (it
// never became a record) before appending. A new log's directory is
// fsynced before NewAuditLogger returns, so the file cannot vanish with a
// directory entry that never reached the disk. By default (SyncAtBoundaries)
// the file is fsync'd after every record that is not a node or edge
// operation: transaction commits and rollbacks, permission denials, index
// and configuration changes. A transaction's node and edge records are thus
// durable once its commit record is, which is written right after the
// commit itself: a crash between the two can lose the audit records of that
// one transaction. SyncEveryRecord fsyncs every record; SyncManual leaves it
// to Sync and Close.
//
// One AuditLogger per file: NewAuditLogger takes an exclusive flock on the
// file and fails with engine.ErrBusy while another logger, in this process
// or another, has it open. Reading (QueryOperations, Verify, ScanFile,
// VerifyFile) needs no lock.
package audit

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/vfs"
)

// Record is one audited operation.
type Record struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	User   string    `json:"user"`
	Op     string    `json:"op"`
	Target string    `json:"target,omitempty"`
	OK     bool      `json:"ok"`
	Error  string    `json:"error,omitempty"`
	Prev   string    `json:"prev"`
	Hash   string    `json:"hash"`
}

// body is the hashed part of a record, in file order.
type body struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	User   string    `json:"user"`
	Op     string    `json:"op"`
	Target string    `json:"target,omitempty"`
	OK     bool      `json:"ok"`
	Error  string    `json:"error,omitempty"`
	Prev   string    `json:"prev"`
}

// GenesisHash is the prev of the first record.
var GenesisHash = strings.Repeat("0", 64)

const (
	hashKey   = `,"hash":"`
	suffixLen = len(hashKey) + 64 + 2 // ,"hash":"<64 hex>"}
	maxLine   = 1 << 20

	maxUser   = 1024
	maxTarget = 1024
	maxError  = 4096
)

// ErrTampered is matched by the errors Verify returns when the chain is
// broken.
var ErrTampered = errors.New("audit log tampered")

// TamperError names where the chain breaks.
type TamperError struct {
	Path   string
	Line   int   // 1-based; 0 when unknown (found by NewAuditLogger at the tail)
	Offset int64 // byte offset of the line
	Reason string
}

func (e *TamperError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("audit log %s: line %d (offset %d): %s", e.Path, e.Line, e.Offset, e.Reason)
	}
	return fmt.Sprintf("audit log %s: offset %d: %s", e.Path, e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrTampered) true.
func (e *TamperError) Is(target error) bool { return target == ErrTampered }

// SyncPolicy says when records are fsync'd.
type SyncPolicy int

const (
	// SyncAtBoundaries fsyncs after every record that is not a node or edge
	// operation (the default).
	SyncAtBoundaries SyncPolicy = iota
	// SyncEveryRecord fsyncs after every record.
	SyncEveryRecord
	// SyncManual fsyncs only in Sync and Close.
	SyncManual
)

// User returns &name, for QueryOperations' user filter.
func User(name string) *string { return &name }

// AuditLogger appends records to an audit log file. It implements
// engine.Auditor and is safe for concurrent use.
type AuditLogger struct {
	path string
	ops  atomic.Pointer[map[string]bool] // nil: log everything

	fs     vfs.FS
	mu     sync.Mutex
	f      vfs.File
	seq    uint64
	prev   string
	size   int64 // bytes of complete records in the file
	dirty  bool  // written but not fsync'd
	policy SyncPolicy
	err    error // first write or sync error
	closed bool
	now    func() time.Time
	buf    bytes.Buffer

	key        []byte // HMAC key; nil: plain SHA-256 chain
	reads      bool   // ask the engine to audit reads
	name       string // absolute path: the name of the anchor in the database
	syncedSeq  uint64 // last record known durable
	syncedHash string
}

var (
	_ engine.Auditor       = (*AuditLogger)(nil)
	_ engine.AuditAnchorer = (*AuditLogger)(nil)
	_ engine.ReadAuditor   = (*AuditLogger)(nil)
)

// KeyEnv is the environment variable holding the audit log's HMAC key
// (NewAuditLogger and VerifyFile read it when no key is given).
const KeyEnv = "SOMBRA_AUDIT_KEY"

// MinKeyLen is the shortest HMAC key accepted, in bytes.
const MinKeyLen = 16

// Options configure NewAuditLoggerWithOptions.
type Options struct {
	// Key is the HMAC-SHA256 key of the chain: without it nobody can
	// rewrite a record and recompute the chain. Nil: the key in
	// $SOMBRA_AUDIT_KEY if set, else an unkeyed SHA-256 chain (which shows
	// accidental damage, not a rewrite by someone who can recompute it).
	Key []byte
	// AuditReads asks the engine to record reads too (op "read", one
	// record per read operation: GetNode, Neighbors, NodesByLabel, scans...).
	AuditReads bool
	// FS is the file layer the log is written and read through (default:
	// the OS). Pass the database's (db.Config().FS) so that the tests that
	// fail or cut the database's files reach its audit log too.
	FS vfs.FS
}

// KeyFromEnv returns the key in $SOMBRA_AUDIT_KEY (nil when it is unset):
// hex, base64, or the raw bytes, at least MinKeyLen bytes.
func KeyFromEnv() ([]byte, error) {
	v := strings.TrimSpace(os.Getenv(KeyEnv))
	if v == "" {
		return nil, nil
	}
	k := []byte(v)
	if b, err := hex.DecodeString(v); err == nil {
		k = b
	} else if b, err := base64.StdEncoding.DecodeString(v); err == nil {
		k = b
	}
	if len(k) < MinKeyLen {
		return nil, fmt.Errorf("$%s: audit key of %d bytes, want at least %d: %w", KeyEnv, len(k), MinKeyLen, engine.ErrInvalid)
	}
	return k, nil
}

// NewAuditLogger opens (creating it, mode 0600) the audit log at path for
// appending, continuing the hash chain of the records already there, keyed
// with $SOMBRA_AUDIT_KEY when it is set. It logs every operation until
// LogOperations narrows it.
func NewAuditLogger(path string) (*AuditLogger, error) {
	return NewAuditLoggerWithOptions(path, Options{})
}

// NewAuditLoggerWithOptions is NewAuditLogger with options.
func NewAuditLoggerWithOptions(path string, o Options) (*AuditLogger, error) {
	key := o.Key
	if key == nil {
		var err error
		if key, err = KeyFromEnv(); err != nil {
			return nil, err
		}
	} else if len(key) < MinKeyLen {
		return nil, fmt.Errorf("audit key of %d bytes, want at least %d: %w", len(key), MinKeyLen, engine.ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("audit log %s: %w", path, err)
	}
	fsys := o.FS
	if fsys == nil {
		fsys = vfs.OS
	}
	// Knowing whether this call made the file lets a failure take it back.
	created := true
	f, err := fsys.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		created = false
		f, err = fsys.OpenFile(path, os.O_RDWR, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	fail := func(err error) (*AuditLogger, error) {
		f.Close()
		if created {
			_ = fsys.Remove(path)
		}
		return nil, err
	}
	if err := f.Lock(); err != nil {
		if errors.Is(err, vfs.ErrLocked) {
			// Never a file another logger just made: that one holds it.
			f.Close()
			return nil, fmt.Errorf("audit log %s is open in another logger: %w", path, engine.ErrBusy)
		}
		return fail(fmt.Errorf("lock audit log %s: %w", path, err))
	}
	a := &AuditLogger{path: path, fs: fsys, f: f, prev: GenesisHash, now: time.Now, key: key, reads: o.AuditReads, name: abs}
	if err := a.recover(); err != nil {
		return fail(err)
	}
	a.syncedSeq, a.syncedHash = a.seq, a.prev
	if created || a.size == 0 { // (an empty log may be the one a crashed logger made)
		if err := vfs.SyncParent(fsys, path); err != nil {
			return fail(fmt.Errorf("audit log %s: fsync its directory: %w", path, err))
		}
	}
	return a, nil
}

// recover cuts an incomplete last line and picks up seq and prev from the
// last record.
func (a *AuditLogger) recover() error {
	st, err := a.f.Stat()
	if err != nil {
		return fmt.Errorf("audit log %s: %w", a.path, err)
	}
	size := st.Size()
	if size == 0 {
		return nil
	}
	end, err := lastNewline(a.f, size) // offset just past the last '\n'
	if err != nil {
		return fmt.Errorf("audit log %s: %w", a.path, err)
	}
	if end < size {
		// A write torn by a crash: those bytes never formed a record.
		if err := a.f.Truncate(end); err != nil {
			return fmt.Errorf("audit log %s: cut incomplete last record: %w", a.path, err)
		}
		if err := a.f.Sync(); err != nil {
			return fmt.Errorf("audit log %s: %w", a.path, err)
		}
	}
	a.size = end
	if end == 0 {
		return nil
	}
	start, err := lastNewline(a.f, end-1)
	if err != nil {
		return fmt.Errorf("audit log %s: %w", a.path, err)
	}
	if end-start > maxLine {
		return &TamperError{Path: a.path, Offset: start, Reason: "last record is too long"}
	}
	line := make([]byte, end-start-1)
	if _, err := a.f.ReadAt(line, start); err != nil {
		return fmt.Errorf("audit log %s: %w", a.path, err)
	}
	rec, err := parseLine(line, a.key)
	if err != nil {
		return &TamperError{Path: a.path, Offset: start, Reason: "last record: " + err.Error()}
	}
	a.seq, a.prev = rec.Seq, rec.Hash
	return nil
}

// lastNewline returns the offset just past the last '\n' before end, or 0.
func lastNewline(f vfs.File, end int64) (int64, error) {
	buf := make([]byte, 4096)
	for end > 0 {
		n := int64(len(buf))
		if n > end {
			n = end
		}
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return end - n + int64(i) + 1, nil
		}
		end -= n
	}
	return 0, nil
}

// Path returns the log's file name.
func (a *AuditLogger) Path() string { return a.path }

// LogAllOperations records every operation (the default).
func (a *AuditLogger) LogAllOperations() { a.ops.Store(nil) }

// LogOperations records only the named operations (engine.AuditOperations
// lists them); an unknown name is an error (engine.ErrInvalid) and leaves
// the selection unchanged.
func (a *AuditLogger) LogOperations(ops []string) error {
	known := map[string]bool{}
	for _, op := range engine.AuditOperations() {
		known[op] = true
	}
	m := make(map[string]bool, len(ops))
	for _, op := range ops {
		if !known[op] {
			return fmt.Errorf("audit operation %q (known: %s): %w", op, strings.Join(engine.AuditOperations(), ", "), engine.ErrInvalid)
		}
		m[op] = true
	}
	a.ops.Store(&m)
	return nil
}

// Logs reports whether op is being recorded.
func (a *AuditLogger) Logs(op string) bool {
	m := a.ops.Load()
	return m == nil || (*m)[op]
}

// SetSyncPolicy chooses when records are fsync'd.
func (a *AuditLogger) SetSyncPolicy(p SyncPolicy) {
	a.mu.Lock()
	a.policy = p
	a.mu.Unlock()
}

// boundary reports whether op ends a unit of work (anything but a node or
// edge operation, which always precede their transaction's commit record).
func boundary(op string) bool {
	return !strings.HasPrefix(op, "node_") && !strings.HasPrefix(op, "edge_")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Record appends one record (engine.Auditor). It never fails: a write
// error is kept for Err, Sync and Close to return, and later records are
// still attempted.
func (a *AuditLogger) Record(op, user, target string, err error) {
	if !a.Logs(op) {
		if boundary(op) {
			a.mu.Lock()
			if a.policy == SyncAtBoundaries && a.dirty && !a.closed {
				a.syncLocked()
			}
			a.mu.Unlock()
		}
		return
	}
	b := body{User: clip(user, maxUser), Op: op, Target: clip(target, maxTarget), OK: err == nil}
	if err != nil {
		b.Error = clip(err.Error(), maxError)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		if a.err == nil {
			a.err = fmt.Errorf("audit log %s: record after Close", a.path)
		}
		return
	}
	b.Seq, b.Prev, b.Time = a.seq+1, a.prev, a.now().UTC()
	line, hash, e := encode(&a.buf, &b, a.key)
	if e != nil {
		a.fail(e)
		return
	}
	n, e := a.f.WriteAt(line, a.size)
	if e != nil {
		// Take back a partial line so the next record starts clean.
		if n > 0 {
			a.f.Truncate(a.size)
		}
		a.fail(e)
		return
	}
	a.seq, a.prev, a.size, a.dirty = b.Seq, hash, a.size+int64(n), true
	if a.policy == SyncEveryRecord || (a.policy == SyncAtBoundaries && boundary(op)) {
		a.syncLocked()
	}
}

// sum is a record's hash: HMAC-SHA256 with the key, SHA-256 without.
func sum(key, data []byte) string {
	if key == nil {
		s := sha256.Sum256(data)
		return hex.EncodeToString(s[:])
	}
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return hex.EncodeToString(m.Sum(nil))
}

// encode renders b as a complete line (with its hash and newline).
func encode(buf *bytes.Buffer, b *body, key []byte) (line []byte, hash string, err error) {
	buf.Reset()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(b); err != nil {
		return nil, "", err
	}
	data := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	hash = sum(key, data)
	line = make([]byte, 0, len(data)+suffixLen+1)
	line = append(line, data[:len(data)-1]...)
	line = append(line, hashKey...)
	line = append(line, hash...)
	line = append(line, "\"}\n"...)
	return line, hash, nil
}

// parseLine decodes a line (without its newline) and checks that its hash
// covers its bytes.
func parseLine(line []byte, key []byte) (Record, error) {
	var r Record
	if len(line) < suffixLen+2 || !bytes.Equal(line[len(line)-suffixLen:len(line)-66], []byte(hashKey)) ||
		!bytes.HasSuffix(line, []byte(`"}`)) {
		return r, errors.New("malformed record (no hash)")
	}
	stored := string(line[len(line)-66 : len(line)-2])
	data := make([]byte, 0, len(line)-suffixLen+1)
	data = append(append(data, line[:len(line)-suffixLen]...), '}')
	if !hmac.Equal([]byte(sum(key, data)), []byte(stored)) {
		if key != nil {
			return r, errors.New("MAC mismatch: the record was altered, or the log was not written with this key")
		}
		return r, errors.New("hash mismatch: the record was altered (or the log is keyed: set $" + KeyEnv + ")")
	}
	if err := json.Unmarshal(line, &r); err != nil {
		return r, fmt.Errorf("malformed record: %v", err)
	}
	if r.Hash != stored {
		return r, errors.New("malformed record (duplicate hash field)")
	}
	return r, nil
}

func (a *AuditLogger) fail(err error) {
	if a.err == nil {
		a.err = fmt.Errorf("audit log %s: %w", a.path, err)
	}
}

func (a *AuditLogger) syncLocked() {
	if err := a.f.Sync(); err != nil {
		a.fail(err)
		return
	}
	a.dirty = false
	a.syncedSeq, a.syncedHash = a.seq, a.prev
}

// AuditAnchor makes the log durable and returns its name (absolute path)
// and last record (engine.AuditAnchorer): the engine records them in the
// database at each write commit, so VerifyFile(path, AgainstDatabase(db))
// detects records cut from the end. Under SyncManual it returns the last
// record already durable rather than syncing.
func (a *AuditLogger) AuditAnchor() (string, uint64, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return "", 0, "", fmt.Errorf("audit log %s: closed", a.path)
	}
	if a.dirty && a.policy != SyncManual {
		a.syncLocked()
	}
	if a.err != nil {
		return "", 0, "", a.err
	}
	return a.name, a.syncedSeq, a.syncedHash, nil
}

// AuditsReads reports whether reads are audited (Options.AuditReads;
// engine.ReadAuditor).
func (a *AuditLogger) AuditsReads() bool { return a.reads }

// Sync makes every record written so far durable and returns the first
// error any write or sync met.
func (a *AuditLogger) Sync() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.closed && a.dirty {
		a.syncLocked()
	}
	return a.err
}

// Err returns the first error a write or sync met, if any.
func (a *AuditLogger) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// LastHash returns the hash of the last record ("0"*64 for an empty log):
// kept elsewhere, it proves later that no record was cut from the end.
func (a *AuditLogger) LastHash() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.prev
}

// Count returns the number of records in the log.
func (a *AuditLogger) Count() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seq
}

// Close syncs and closes the log; records arriving later are dropped (and
// reported by Err).
func (a *AuditLogger) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return a.err
	}
	a.closed = true
	if a.dirty {
		a.syncLocked()
	}
	if err := a.f.Close(); err != nil {
		a.fail(err)
	}
	return a.err
}

// limit returns the size of the complete records written so far.
func (a *AuditLogger) limit() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.size
}

// QueryOperations returns the records with from <= time <= to (a zero from
// or to leaves that side open) by user (nil for every user), in file
// order. It streams the file; only the matches are held in memory.
func (a *AuditLogger) QueryOperations(from, to time.Time, user *string) ([]Record, error) {
	var out []Record
	err := a.ScanOperations(from, to, user, func(r Record) bool { out = append(out, r); return true })
	return out, err
}

// ScanOperations calls fn for each record QueryOperations would return,
// until fn returns false. Records appended during the scan are not seen.
func (a *AuditLogger) ScanOperations(from, to time.Time, user *string, fn func(Record) bool) error {
	return scan(a.fs, a.path, a.limit(), filter(from, to, user, fn))
}

// Verify checks the whole hash chain with the logger's key (and, given
// AgainstDatabase, the head recorded in the database). It returns nil or
// an error matching ErrTampered (a *TamperError) that names the first bad
// line.
func (a *AuditLogger) Verify(opts ...VerifyOption) error {
	c := verifyConfig{key: a.key, keySet: true}
	for _, o := range opts {
		o(&c)
	}
	_, err := verify(a.fs, a.path, a.limit(), c)
	return err
}

// ScanFile streams the records of the audit log at path (which may be in
// use by a logger) like ScanOperations. It does not check hashes.
func ScanFile(path string, from, to time.Time, user *string, fn func(Record) bool) error {
	return scan(vfs.OS, path, -1, filter(from, to, user, fn))
}

// VerifyResult describes a verified log.
type VerifyResult struct {
	Records  uint64 // complete records
	LastHash string
	// TornTail is set when the file ends in an incomplete line (a crash
	// during a write); the next NewAuditLogger cuts it off.
	TornTail bool
	// Keyed is set when the chain was checked with an HMAC key.
	Keyed bool
	// AnchorSeq is the record the database's latest commit says the log
	// held (0: no database given, or none recorded); the log reached it.
	AnchorSeq uint64
}

// VerifyOption adds a check to VerifyFile and Verify.
type VerifyOption func(*verifyConfig)

type verifyConfig struct {
	key    []byte
	keySet bool
	db     *engine.DB
}

// WithKey checks the chain with key instead of $SOMBRA_AUDIT_KEY (nil: an
// unkeyed chain).
func WithKey(key []byte) VerifyOption {
	return func(c *verifyConfig) { c.key, c.keySet = key, true }
}

// AgainstDatabase also checks the head the database recorded for this log
// at its latest write commit: a log that ends before it, or holds another
// record there, had records cut from its end (or replaced).
func AgainstDatabase(db *engine.DB) VerifyOption {
	return func(c *verifyConfig) { c.db = db }
}

// VerifyFile checks the chain of the audit log at path, which may be in
// use by a logger: with the key in $SOMBRA_AUDIT_KEY (or WithKey), and
// with AgainstDatabase the head recorded in the database, which is what
// detects a cut tail. An error of the log matches ErrTampered.
func VerifyFile(path string, opts ...VerifyOption) (VerifyResult, error) {
	var c verifyConfig
	for _, o := range opts {
		o(&c)
	}
	if !c.keySet {
		k, err := KeyFromEnv()
		if err != nil {
			return VerifyResult{}, err
		}
		c.key = k
	}
	return verify(vfs.OS, path, -1, c)
}

func filter(from, to time.Time, user *string, fn func(Record) bool) func(Record) bool {
	return func(r Record) bool {
		if (!from.IsZero() && r.Time.Before(from)) || (!to.IsZero() && r.Time.After(to)) {
			return true
		}
		if user != nil && r.User != *user {
			return true
		}
		return fn(r)
	}
}

func verify(fsys vfs.FS, path string, limit int64, c verifyConfig) (VerifyResult, error) {
	res := VerifyResult{LastHash: GenesisHash, Keyed: c.key != nil}
	var anchorSeq uint64
	var anchorHash string
	if c.db != nil {
		abs, err := filepath.Abs(path)
		if err != nil {
			return res, fmt.Errorf("audit log %s: %w", path, err)
		}
		seq, hash, ok, err := c.db.AuditAnchor(abs)
		if err != nil {
			return res, fmt.Errorf("audit log %s: read its head from %s: %w", path, c.db.Path(), err)
		}
		if ok {
			anchorSeq, anchorHash = seq, hash
		}
	}
	var err error
	var size int64
	res.TornTail, err = lines(fsys, path, limit, func(n int, off int64, line []byte) error {
		size = off + int64(len(line)) + 1
		r, err := parseLine(line, c.key)
		if err != nil {
			return &TamperError{Path: path, Line: n, Offset: off, Reason: err.Error()}
		}
		if r.Prev != res.LastHash {
			return &TamperError{Path: path, Line: n, Offset: off,
				Reason: "previous-hash mismatch: a record before it was removed, inserted or altered"}
		}
		if r.Seq != res.Records+1 {
			return &TamperError{Path: path, Line: n, Offset: off,
				Reason: fmt.Sprintf("sequence %d, want %d", r.Seq, res.Records+1)}
		}
		if r.Seq == anchorSeq && r.Hash != anchorHash {
			return &TamperError{Path: path, Line: n, Offset: off,
				Reason: fmt.Sprintf("record %d is not the one the database recorded at its last commit (hash %.16s…): the log was replaced from here", r.Seq, anchorHash)}
		}
		res.Records, res.LastHash = r.Seq, r.Hash
		return nil
	})
	if err == nil && res.Records < anchorSeq {
		return res, &TamperError{Path: path, Line: int(res.Records) + 1, Offset: size,
			Reason: fmt.Sprintf("the log ends at record %d but the database recorded record %d at its last commit: records were cut from the end", res.Records, anchorSeq)}
	}
	if err == nil {
		res.AnchorSeq = anchorSeq
	}
	return res, err
}

var errStop = errors.New("stop")

func scan(fsys vfs.FS, path string, limit int64, fn func(Record) bool) error {
	_, err := lines(fsys, path, limit, func(n int, off int64, line []byte) error {
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			return fmt.Errorf("audit log %s: line %d: malformed record: %v", path, n, err)
		}
		if !fn(r) {
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// lines streams the newline-terminated lines of the first limit bytes of
// path (all of it when limit < 0), with 1-based numbers and offsets. It
// reports whether the data ends in an incomplete line (which is skipped).
func lines(fsys vfs.FS, path string, limit int64, fn func(n int, off int64, line []byte) error) (torn bool, err error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return false, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	if limit < 0 {
		st, err := f.Stat()
		if err != nil {
			return false, fmt.Errorf("audit log: %w", err)
		}
		limit = st.Size()
	}
	r := io.NewSectionReader(f, 0, limit)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			torn = true
			return len(data), nil, nil
		}
		return 0, nil, nil
	})
	n, off := 0, int64(0)
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if err := fn(n, off, line); err != nil {
			return torn, err
		}
		off += int64(len(line)) + 1
	}
	if err := sc.Err(); err != nil {
		return torn, fmt.Errorf("audit log %s: line %d: %w", path, n+1, err)
	}
	return torn, nil
}
