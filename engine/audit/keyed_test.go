package audit

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
)

// Issue 7 item 15: a keyed chain, anchored in the database.

var testKey = []byte("0123456789abcdef0123456789abcdef")

// rechain rewrites every line from i on as an attacker without the key
// would: same records (line i with user mallory), every hash recomputed
// with key (nil: the unkeyed SHA-256 any attacker can compute).
func rechain(t *testing.T, lines []string, i int, key []byte) []string {
	t.Helper()
	out := append([]string(nil), lines[:i]...)
	prev := GenesisHash
	if i > 0 {
		r, err := parseLine([]byte(strings.TrimSuffix(lines[i-1], "\n")), testKey)
		must(t, err)
		prev = r.Hash
	}
	for j := i; j < len(lines); j++ {
		var r Record
		r, err := parseLine([]byte(strings.TrimSuffix(lines[j], "\n")), testKey)
		must(t, err)
		b := body{Seq: r.Seq, Time: r.Time, User: r.User, Op: r.Op, Target: r.Target, OK: r.OK, Error: r.Error, Prev: prev}
		if j == i {
			b.User = "mallory"
		}
		var buf bytes.Buffer
		line, hash, err := encode(&buf, &b, key)
		must(t, err)
		out = append(out, string(line))
		prev = hash
	}
	return out
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
}

func writeLines(t *testing.T, path string, lines []string) {
	t.Helper()
	s := strings.Join(lines, "")
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	must(t, os.WriteFile(path, []byte(s), 0o600))
}

// auditedDB writes n transactions through a keyed, anchoring logger.
func auditedDB(t *testing.T, n int, o Options) (*engine.DB, *AuditLogger, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := engine.Open(filepath.Join(dir, "g.db"))
	must(t, err)
	t.Cleanup(func() { db.Close() })
	path := filepath.Join(dir, "audit.log")
	a, err := NewAuditLoggerWithOptions(path, o)
	must(t, err)
	db.SetAuditor(a)
	for range n {
		must(t, db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("N", nil); return err }))
	}
	return db, a, path
}

func tampered(t *testing.T, what string, err error, reason string) {
	t.Helper()
	if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), reason) {
		t.Errorf("%s: %v, want tampering (%q)", what, err, reason)
	}
}

func TestKeyedChainRewriteDetected(t *testing.T) {
	db, a, path := auditedDB(t, 5, Options{Key: testKey})
	must(t, a.Close())
	db.SetAuditor(nil)
	res, err := VerifyFile(path, WithKey(testKey), AgainstDatabase(db))
	must(t, err)
	if !res.Keyed || res.Records != 10 || res.AnchorSeq != 9 {
		t.Fatalf("intact log: %+v", res)
	}
	orig := readLines(t, path)
	// Rewrite record 3 and recompute every hash after it, as the unkeyed
	// chain allowed: with SHA-256 (no key) and with a guessed key.
	for _, key := range [][]byte{nil, []byte("not-the-key-not-the-key-not-the")} {
		writeLines(t, path, rechain(t, orig, 2, key))
		_, err := VerifyFile(path, WithKey(testKey))
		tampered(t, "rewritten and rechained", err, "line 3")
	}
	// The same rewrite passes an unkeyed verifier: that is the hole the key
	// closes.
	writeLines(t, path, rechain(t, orig, 0, nil))
	if _, err := VerifyFile(path, WithKey(nil)); err != nil {
		t.Fatalf("unkeyed rechained log should verify unkeyed: %v", err)
	}
	tampered(t, "fully rechained without the key", func() error { _, err := VerifyFile(path, WithKey(testKey)); return err }(), "line 1")
	// Reordered records.
	swapped := append([]string(nil), orig...)
	swapped[3], swapped[4] = swapped[4], swapped[3]
	writeLines(t, path, swapped)
	_, err = VerifyFile(path, WithKey(testKey))
	tampered(t, "reordered", err, "line 4")
}

func TestTruncatedTailDetected(t *testing.T) {
	db, a, path := auditedDB(t, 5, Options{Key: testKey})
	must(t, a.Close())
	db.SetAuditor(nil)
	orig := readLines(t, path)
	for _, keep := range []int{0, 1, 4, 8} {
		writeLines(t, path, orig[:keep])
		if keep == 0 {
			must(t, os.WriteFile(path, nil, 0o600))
		}
		// Without the database a cut at a record boundary looks whole...
		if _, err := VerifyFile(path, WithKey(testKey)); err != nil {
			t.Fatalf("keep %d, no database: %v", keep, err)
		}
		// ...the head recorded at the last commit shows the cut.
		_, err := VerifyFile(path, WithKey(testKey), AgainstDatabase(db))
		tampered(t, "truncated to "+strconv.Itoa(keep)+" records", err, "cut from the end")
	}
	// A log cut and regrown to the anchored length with other records.
	regrown := rechain(t, orig[:9], 4, testKey) // even with the key
	writeLines(t, path, regrown)
	_, err := VerifyFile(path, WithKey(testKey), AgainstDatabase(db))
	tampered(t, "replaced tail", err, "not the one the database recorded")
	// Only the records after the last commit's anchor (that commit's own
	// record) can be cut unseen: documented.
	writeLines(t, path, orig[:9])
	if _, err := VerifyFile(path, WithKey(testKey), AgainstDatabase(db)); err != nil {
		t.Fatalf("cut of the final commit record: %v", err)
	}
}

func TestKeyFromEnvironment(t *testing.T) {
	t.Setenv(KeyEnv, hex.EncodeToString(testKey))
	_, a, path := auditedDB(t, 2, Options{})
	must(t, a.Close())
	res, err := VerifyFile(path) // the key from the environment too
	if err != nil || !res.Keyed {
		t.Fatalf("%+v, %v", res, err)
	}
	if _, err := VerifyFile(path, WithKey(nil)); !errors.Is(err, ErrTampered) {
		t.Fatalf("a keyed log verified without the key: %v", err)
	}
	t.Setenv(KeyEnv, "short")
	if _, err := NewAuditLogger(filepath.Join(t.TempDir(), "x.log")); !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("short key: %v", err)
	}
}

func TestReadsAuditedWhenAsked(t *testing.T) {
	for _, reads := range []bool{false, true} {
		db, a, _ := auditedDB(t, 1, Options{Key: testKey, AuditReads: reads})
		must(t, db.AsUser("carol").View(func(tx *engine.Tx) error {
			if _, err := tx.GetNode(1); err != nil {
				return err
			}
			_, err := tx.Neighbors(1)
			return err
		}))
		recs, err := a.QueryOperations(time.Time{}, time.Time{}, User("carol"))
		must(t, err)
		var got []string
		for _, r := range recs {
			got = append(got, r.Op+" "+r.Target)
		}
		want := ""
		if reads {
			want = "read node:1,read neighbors node:1"
		}
		if strings.Join(got, ",") != want {
			t.Errorf("AuditReads %v: records %q, want %q", reads, got, want)
		}
		must(t, a.Close())
		db.SetAuditor(nil)
	}
}
