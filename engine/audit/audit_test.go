package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/security"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newLog(t *testing.T) (*AuditLogger, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	a, err := NewAuditLogger(path)
	must(t, err)
	t.Cleanup(func() { a.Close() })
	return a, path
}

// clock returns a fake now that advances one minute per call from base.
func clock(base time.Time) func() time.Time {
	var mu sync.Mutex
	n := 0
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		n++
		return base.Add(time.Duration(n-1) * time.Minute)
	}
}

func ops(recs []Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.User + " " + r.Op + " " + r.Target
		if !r.OK {
			out[i] += " !"
		}
	}
	return out
}

func TestRecordFieldsAndVerify(t *testing.T) {
	a, path := newLog(t)
	a.Record(engine.OpNodeCreate, "bob", "node:1", nil)
	a.Record(engine.OpPermissionDenied, "charlie", "node_delete node:1", errors.New("permission denied: <&>"))
	must(t, a.Sync())
	must(t, a.Verify())
	recs, err := a.QueryOperations(time.Time{}, time.Time{}, nil)
	must(t, err)
	if len(recs) != 2 || a.Count() != 2 {
		t.Fatalf("%d records, count %d", len(recs), a.Count())
	}
	r := recs[1]
	if r.Seq != 2 || r.User != "charlie" || r.Op != "permission_denied" || r.Target != "node_delete node:1" ||
		r.OK || r.Error != "permission denied: <&>" || r.Prev != recs[0].Hash || r.Hash != a.LastHash() {
		t.Fatalf("record %+v", r)
	}
	if recs[0].Prev != GenesisHash || !recs[0].OK || recs[0].Error != "" {
		t.Fatalf("first record %+v", recs[0])
	}
	if time.Since(r.Time) > time.Minute || r.Time.Location() != time.UTC {
		t.Fatalf("time %v", r.Time)
	}
	b, _ := os.ReadFile(path)
	if !bytes.Contains(b, []byte("<&>")) || bytes.Count(b, []byte("\n")) != 2 {
		t.Fatalf("file:\n%s", b)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
}

func TestQueryByTimeAndUser(t *testing.T) {
	a, _ := newLog(t)
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	a.now = clock(base)
	users := []string{"alice", "bob", "alice", "charlie", "bob", "alice"} // minutes 0..5
	for i, u := range users {
		a.Record(engine.OpNodeCreate, u, fmt.Sprintf("node:%d", i+1), nil)
	}
	q := func(from, to time.Time, user *string) []string {
		recs, err := a.QueryOperations(from, to, user)
		must(t, err)
		var out []string
		for _, r := range recs {
			out = append(out, r.Target)
		}
		return out
	}
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	cases := []struct {
		from, to time.Time
		user     *string
		want     []string
	}{
		{time.Time{}, time.Time{}, nil, []string{"node:1", "node:2", "node:3", "node:4", "node:5", "node:6"}},
		{at(1), at(3), nil, []string{"node:2", "node:3", "node:4"}}, // inclusive both ends
		{at(1), at(3), User("alice"), []string{"node:3"}},
		{time.Time{}, time.Time{}, User("alice"), []string{"node:1", "node:3", "node:6"}},
		{at(4), time.Time{}, User("bob"), []string{"node:5"}},
		{at(6), at(10), nil, nil},
		{time.Time{}, time.Time{}, User(""), nil},
		// The guide's query: the last 24 hours, one user.
		{at(5).Add(-24 * time.Hour), at(5), User("alice"), []string{"node:1", "node:3", "node:6"}},
	}
	for i, c := range cases {
		if got := q(c.from, c.to, c.user); !reflect.DeepEqual(got, c.want) {
			t.Errorf("case %d: got %v, want %v", i, got, c.want)
		}
	}
	// Streaming stops when asked.
	n := 0
	must(t, a.ScanOperations(time.Time{}, time.Time{}, nil, func(Record) bool { n++; return n < 2 }))
	if n != 2 {
		t.Errorf("scan did not stop: %d", n)
	}
	// Reading a file in use needs no logger.
	var viaFile []string
	must(t, ScanFile(a.Path(), at(2), time.Time{}, User("alice"), func(r Record) bool { viaFile = append(viaFile, r.Target); return true }))
	if !reflect.DeepEqual(viaFile, []string{"node:3", "node:6"}) {
		t.Errorf("ScanFile: %v", viaFile)
	}
}

func TestLogOperationsFilter(t *testing.T) {
	a, _ := newLog(t)
	if !a.Logs(engine.OpEdgeDelete) {
		t.Fatal("a new logger must log everything")
	}
	must(t, a.LogOperations([]string{"node_create", "edge_create", "node_delete", "transaction_commit"}))
	for _, op := range engine.AuditOperations() {
		a.Record(op, "u", "", nil)
	}
	recs, err := a.QueryOperations(time.Time{}, time.Time{}, nil)
	must(t, err)
	if got := ops(recs); !reflect.DeepEqual(got, []string{"u node_create ", "u node_delete ", "u edge_create ", "u transaction_commit "}) {
		t.Fatalf("filtered records: %q", got)
	}
	if err := a.LogOperations([]string{"node_craete"}); !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("typo accepted: %v", err)
	}
	if a.Logs(engine.OpEdgeDelete) || !a.Logs(engine.OpNodeCreate) {
		t.Fatal("a rejected LogOperations changed the selection")
	}
	a.LogAllOperations()
	a.Record(engine.OpEdgeDelete, "u", "edge:1", nil)
	must(t, a.Verify())
	if a.Count() != 5 {
		t.Fatalf("count %d", a.Count())
	}
}

// Editing, removing, inserting or reordering lines breaks the chain at the
// line concerned.
func TestTamperDetection(t *testing.T) {
	_, path := writeLog(t, 6)
	orig, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(orig), "\n")
	lines = lines[:len(lines)-1] // the empty string after the last newline

	check := func(name string, text string, line int, reason string) {
		t.Helper()
		must(t, os.WriteFile(path, []byte(text), 0o600))
		_, err := VerifyFile(path)
		var te *TamperError
		if !errors.Is(err, ErrTampered) || !errors.As(err, &te) || te.Line != line || !strings.Contains(te.Reason, reason) {
			t.Errorf("%s: err = %v, want line %d (%s)", name, err, line, reason)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("line %d", line)) {
			t.Errorf("%s: error %q does not name line %d", name, err, line)
		}
	}
	edit := func(i int, old, new string) string {
		l := append([]string(nil), lines...)
		if !strings.Contains(l[i], old) {
			t.Fatalf("line %d lacks %q: %s", i+1, old, l[i])
		}
		l[i] = strings.Replace(l[i], old, new, 1)
		return strings.Join(l, "")
	}
	check("user changed", edit(2, `"user":"charlie"`, `"user":"eve"`), 3, "hash mismatch")
	check("outcome changed", edit(3, `"ok":false`, `"ok":true `), 4, "hash mismatch")
	check("whitespace added", edit(1, `,"op"`, `, "op"`), 2, "hash mismatch")
	check("hash removed", edit(4, `,"hash":"`, `,"hush":"`), 5, "malformed")
	removed := strings.Join(append(append([]string(nil), lines[:2]...), lines[3:]...), "")
	check("line removed", removed, 3, "previous-hash mismatch")
	swapped := append([]string(nil), lines...)
	swapped[1], swapped[2] = swapped[2], swapped[1]
	check("lines swapped", strings.Join(swapped, ""), 2, "previous-hash mismatch")
	check("line duplicated", strings.Join(append(append([]string(nil), lines[:4]...), lines[3:]...), ""), 5, "previous-hash mismatch")
	// Re-hashing an edited record does not help: the next record's prev
	// no longer matches.
	forged := forge(t, lines, 2)
	check("edited and re-hashed", forged, 4, "previous-hash mismatch")

	// The intact file verifies, and a logger refuses to append to a log
	// whose last record was altered.
	must(t, os.WriteFile(path, orig, 0o600))
	res, err := VerifyFile(path)
	if err != nil || res.Records != 6 || res.TornTail {
		t.Fatalf("intact: %+v %v", res, err)
	}
	must(t, os.WriteFile(path, []byte(edit(5, `"user":"`, `"user":"x`)), 0o600))
	if _, err := NewAuditLogger(path); !errors.Is(err, ErrTampered) {
		t.Fatalf("NewAuditLogger on an altered tail: %v", err)
	}
}

// forge rewrites line i (0-based) with another user and a correct hash of
// its own.
func forge(t *testing.T, lines []string, i int) string {
	r, err := parseLine([]byte(strings.TrimSuffix(lines[i], "\n")), nil)
	must(t, err)
	b := body{Seq: r.Seq, Time: r.Time, User: "mallory", Op: r.Op, Target: r.Target, OK: r.OK, Error: r.Error, Prev: r.Prev}
	var buf bytes.Buffer
	line, _, err := encode(&buf, &b, nil)
	must(t, err)
	l := append([]string(nil), lines...)
	l[i] = string(line)
	return strings.Join(l, "")
}

// writeLog writes n records by alternating users and closes the log.
func writeLog(t *testing.T, n int) (*AuditLogger, string) {
	t.Helper()
	a, path := newLog(t)
	users := []string{"alice", "bob", "charlie"}
	for i := 0; i < n; i++ {
		var err error
		if i%2 == 1 {
			err = errors.New("denied")
		}
		a.Record(engine.OpNodeCreate, users[i%3], fmt.Sprintf("node:%d", i+1), err)
	}
	must(t, a.Close())
	return a, path
}

func TestReopenAppends(t *testing.T) {
	_, path := writeLog(t, 3)
	before, _ := os.ReadFile(path)
	a, err := NewAuditLogger(path)
	must(t, err)
	if a.Count() != 3 {
		t.Fatalf("reopened count %d", a.Count())
	}
	// One logger per file.
	if _, err := NewAuditLogger(path); !errors.Is(err, engine.ErrBusy) {
		t.Fatalf("second logger on the same file: %v", err)
	}
	a.Record(engine.OpNodeDelete, "alice", "node:1", nil)
	a.Record(engine.OpTxCommit, "alice", "lsn:9", nil)
	must(t, a.Close())
	after, _ := os.ReadFile(path)
	if !bytes.HasPrefix(after, before) {
		t.Fatal("reopening rewrote earlier records")
	}
	res, err := VerifyFile(path)
	if err != nil || res.Records != 5 {
		t.Fatalf("after reopen: %+v %v", res, err)
	}
	// Records after Close are dropped and reported.
	a.Record(engine.OpNodeCreate, "x", "", nil)
	if a.Err() == nil {
		t.Fatal("Record after Close not reported")
	}
	if after2, _ := os.ReadFile(path); !bytes.Equal(after, after2) {
		t.Fatal("Record after Close wrote")
	}
}

// A crash in the middle of a write leaves an incomplete last line: Verify
// reports it, NewAuditLogger cuts it and continues the chain.
func TestTornTail(t *testing.T) {
	_, path := writeLog(t, 4)
	intact, _ := os.ReadFile(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	f.WriteString(`{"seq":5,"time":"2025-`)
	f.Close()
	res, err := VerifyFile(path)
	if err != nil || !res.TornTail || res.Records != 4 {
		t.Fatalf("torn: %+v %v", res, err)
	}
	a, err := NewAuditLogger(path)
	must(t, err)
	if got, _ := os.ReadFile(path); !bytes.Equal(got, intact) {
		t.Fatal("torn tail not cut")
	}
	a.Record(engine.OpNodeCreate, "bob", "node:9", nil)
	must(t, a.Close())
	res, err = VerifyFile(path)
	if err != nil || res.TornTail || res.Records != 5 {
		t.Fatalf("after recovery: %+v %v", res, err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	a, path := newLog(t)
	a.SetSyncPolicy(SyncManual)
	const writers, each = 8, 250
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				a.Record(engine.OpNodeCreate, fmt.Sprintf("user%d", w), fmt.Sprintf("node:%d", i), nil)
				if i%50 == 0 {
					a.Record(engine.OpTxCommit, fmt.Sprintf("user%d", w), "", nil)
				}
			}
		}()
	}
	// Readers run alongside the writers.
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				if err := a.Verify(); err != nil {
					t.Error(err)
					return
				}
				if _, err := a.QueryOperations(time.Time{}, time.Time{}, User("user1")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	must(t, a.Sync())
	want := uint64(writers * (each + each/50))
	if a.Count() != want {
		t.Fatalf("count %d, want %d", a.Count(), want)
	}
	res, err := VerifyFile(path)
	if err != nil || res.Records != want || res.LastHash != a.LastHash() {
		t.Fatalf("verify: %+v %v", res, err)
	}
	recs, err := a.QueryOperations(time.Time{}, time.Time{}, User("user3"))
	must(t, err)
	if len(recs) != each+each/50 {
		t.Fatalf("user3 has %d records", len(recs))
	}
}

func TestSyncPolicies(t *testing.T) {
	for _, p := range []SyncPolicy{SyncAtBoundaries, SyncEveryRecord, SyncManual} {
		a, path := newLog(t)
		a.SetSyncPolicy(p)
		a.Record(engine.OpNodeCreate, "u", "node:1", nil)
		a.mu.Lock()
		dirty := a.dirty
		a.mu.Unlock()
		if dirty != (p != SyncEveryRecord) {
			t.Errorf("policy %d: dirty=%v after a node record", p, dirty)
		}
		// A commit record is a boundary, even when not itself logged.
		must(t, a.LogOperations([]string{engine.OpNodeCreate}))
		a.Record(engine.OpTxCommit, "u", "lsn:1", nil)
		a.mu.Lock()
		dirty = a.dirty
		a.mu.Unlock()
		if dirty != (p == SyncManual) {
			t.Errorf("policy %d: dirty=%v after a commit", p, dirty)
		}
		must(t, a.Close())
		if res, err := VerifyFile(path); err != nil || res.Records != 1 {
			t.Errorf("policy %d: %+v %v", p, res, err)
		}
	}
}

// The engine calls the auditor for each operation, with the user of the
// transaction and the outcome.
func TestEngineOperationsAudited(t *testing.T) {
	a, _ := newLog(t)
	db, err := engine.Open(filepath.Join(t.TempDir(), "g.db"))
	must(t, err)
	defer db.Close()
	acl := security.NewAccessControl()
	must(t, acl.AddRole("admin", security.AllPermissions()))
	must(t, acl.AddRole("user", []security.Permission{security.Read, security.Write}))
	must(t, acl.AddRole("readonly", []security.Permission{security.Read}))
	must(t, acl.AssignRole("alice", "admin"))
	must(t, acl.AssignRole("bob", "user"))
	must(t, acl.AssignRole("charlie", "readonly"))
	db.SetAuditor(a)
	db.SetAccessControl(acl)
	start := time.Now()

	var n1, n2 engine.NodeID
	var e engine.EdgeID
	must(t, db.AsUser("bob").Update(func(tx *engine.Tx) error {
		var err error
		if n1, err = tx.CreateNode("P", nil); err != nil {
			return err
		}
		if n2, err = tx.CreateNode("P", nil); err != nil {
			return err
		}
		if e, err = tx.CreateEdge(n1, n2, "K", nil); err != nil {
			return err
		}
		if err := tx.SetNodeProperty(n1, "name", engine.StringValue("x")); err != nil {
			return err
		}
		return tx.RemoveNodeProperty(n1, "name")
	}))
	_ = e
	err = db.AsUser("charlie").Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("P", nil); return err })
	if !errors.Is(err, engine.ErrPermissionDenied) {
		t.Fatal(err)
	}
	must(t, db.AsUser("charlie").View(func(tx *engine.Tx) error { _, err := tx.GetNode(n1); return err })) // reads are not audited
	must(t, db.AsUser("alice").Update(func(tx *engine.Tx) error { return tx.DeleteNode(n1) }))
	must(t, db.AsUser("alice").CreatePropertyIndex("name"))
	must(t, db.AsUser("alice").RebuildLabelIndex("P"))
	_, err = db.AsUser("alice").Checkpoint()
	must(t, err)
	if err := db.Authorize("bob", engine.PermissionBackup); err == nil {
		t.Fatal("bob may back up")
	}
	_, err = db.GetNode(n2) // anonymous
	if !errors.Is(err, engine.ErrPermissionDenied) {
		t.Fatal(err)
	}

	recs, err := a.QueryOperations(start, time.Now(), nil) // excludes the "configure access_control:set" record
	must(t, err)
	lsn := func(i int) string { return recs[i].Target }
	want := []string{
		"bob node_create node:1",
		"bob node_create node:2",
		"bob edge_create edge:1 node:1->node:2",
		"bob node_update node:1 set:name",
		"bob node_update node:1 remove:name",
		"bob transaction_commit " + lsn(5),
		"charlie permission_denied node_create !",
		"charlie transaction_rollback ",
		"alice edge_delete edge:1", // DeleteNode removes the node's edges first
		"alice node_delete node:1",
		"alice transaction_commit " + lsn(10),
		"alice transaction_commit " + lsn(11), // the index's own transaction
		"alice index_create property:name",
		"alice transaction_commit " + lsn(13),
		"alice index_rebuild label:P",
		"alice checkpoint mode:passive",
		"bob permission_denied authorize backup !",
		" permission_denied read !",
	}
	if got := ops(recs); !reflect.DeepEqual(got, want) {
		t.Fatalf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, i := range []int{5, 10, 11, 13} {
		if !strings.HasPrefix(recs[i].Target, "lsn:") {
			t.Errorf("commit target %q", recs[i].Target)
		}
	}
	if !strings.Contains(recs[6].Error, `"charlie"`) || !strings.Contains(recs[6].Error, "write") {
		t.Errorf("denial error %q", recs[6].Error)
	}
	bob, err := a.QueryOperations(time.Time{}, time.Time{}, User("bob"))
	must(t, err)
	if len(bob) != 7 {
		t.Errorf("bob has %d records", len(bob))
	}
	must(t, a.Verify())

	// Without access control the operations are still audited; without an
	// auditor nothing is recorded.
	db.SetAccessControl(nil)
	count := a.Count()
	if recs, _ := a.QueryOperations(time.Time{}, time.Time{}, nil); recs[len(recs)-1].Op != engine.OpConfigure {
		t.Errorf("removing access control not audited: %+v", recs[len(recs)-1])
	}
	must(t, db.Update(func(tx *engine.Tx) error { return tx.DeleteNode(n2) }))
	if a.Count() != count+2 {
		t.Errorf("anonymous delete: %d new records", a.Count()-count)
	}
	db.SetAuditor(nil)
	must(t, db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("Q", nil); return err }))
	if a.Count() != count+2 {
		t.Error("records written after the auditor was removed")
	}
}
