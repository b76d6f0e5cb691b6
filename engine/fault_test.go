package engine

// Fault injection through vfs.FaultFS: torn and failed WAL writes, failed
// fsyncs, a full disk, failed and short reads, and on-disk corruption. The
// engine must report an error (never panic, never return wrong data), keep
// every committed transaction, and never expose part of a transaction.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/vfs"
)

// onFile restricts a rule to the file whose name ends with suffix (vfs.NthOp
// matches substrings, and "x.db" is a substring of "x.db-wal").
func onFile(suffix string, op vfs.Op, nth int, sticky bool, f vfs.Fault) vfs.Rule {
	inner := vfs.NthOp(op, "", nth, sticky, f)
	return func(o vfs.Op, name string, n int) *vfs.Fault {
		if !strings.HasSuffix(name, suffix) {
			return nil
		}
		return inner(o, name, n)
	}
}

// batch adds a recognisable transaction: n nodes labelled tag, each with
// property i and an edge to the previous one, plus a property on node 1.
func batch(tx *Tx, tag string, n int) error {
	var prev NodeID
	for i := 0; i < n; i++ {
		id, err := tx.CreateNode(tag, Properties{"i": IntValue(int64(i)), "pad": StringValue(strings.Repeat(tag, 40))})
		if err != nil {
			return err
		}
		if prev != 0 {
			if _, err := tx.CreateEdge(prev, id, tag, nil); err != nil {
				return err
			}
		}
		prev = id
	}
	return nil
}

// batchState reports whether batch tag is present whole (true), absent
// (false), or fails if it is partially visible.
func batchState(db *DB, tag string, n int) (bool, error) {
	var present bool
	err := db.View(func(tx *Tx) error {
		ids, err := tx.NodesByLabel(tag)
		if err != nil {
			return err
		}
		edges := 0
		for e, err := range tx.Edges() {
			if err != nil {
				return err
			}
			if e.Label == tag {
				edges++
			}
		}
		switch {
		case len(ids) == 0 && edges == 0:
			present = false
		case len(ids) == n && edges == n-1:
			present = true
			for i, id := range ids {
				nd, err := tx.GetNode(id)
				if err != nil {
					return err
				}
				if v, _ := nd.Properties["i"].Int(); v != int64(i) {
					return fmt.Errorf("batch %s node %d has i=%d", tag, id, v)
				}
			}
		default:
			return fmt.Errorf("batch %s partially visible: %d of %d nodes, %d of %d edges", tag, len(ids), n, edges, n-1)
		}
		// counts agree with what iteration finds
		cnt := uint64(0)
		for _, err := range tx.Nodes() {
			if err != nil {
				return err
			}
			cnt++
		}
		if cnt != tx.NodeCount() {
			return fmt.Errorf("NodeCount %d, iterated %d", tx.NodeCount(), cnt)
		}
		return nil
	})
	return present, err
}

func wantBatch(t *testing.T, db *DB, tag string, n int, want bool) {
	t.Helper()
	got, err := batchState(db, tag, n)
	if err != nil {
		t.Fatalf("batch %s: %v", tag, err)
	}
	if got != want {
		t.Fatalf("batch %s present=%v, want %v", tag, got, want)
	}
}

// copyFiles copies the database, its WAL and its shm file into a new
// directory, as a crash would leave them.
func copyFiles(t *testing.T, path string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(path))
	for _, sfx := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(path + sfx)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+sfx, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestFaultTornWALWrite(t *testing.T) {
	const fsz = 56 + 4096
	tears := map[string]func(n int) int{
		"first-frame-header": func(n int) int { return 10 },
		"first-page":         func(n int) int { return 56 + 1000 },
		"one-frame":          func(n int) int { return fsz },
		"commit-frame":       func(n int) int { return n - fsz + 100 },
		"all-but-one-byte":   func(n int) int { return n - 1 },
	}
	for name, tear := range tears {
		t.Run(name, func(t *testing.T) {
			ffs := vfs.NewFaultFS(vfs.OS)
			path := tempDB(t)
			cfg := Config{FS: ffs, WALAutoCheckpoint: -1}
			db := mustOpen(t, path, cfg)
			defer db.Close()
			if err := db.Update(func(tx *Tx) error { return batch(tx, "A", 30) }); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			calls := 0
			ffs.SetRule(func(op vfs.Op, file string, n int) *vfs.Fault {
				if op != vfs.OpWrite || !strings.HasSuffix(file, "-wal") {
					return nil
				}
				mu.Lock()
				defer mu.Unlock()
				calls++
				if calls == 1 {
					return &vfs.Fault{Tear: tear(n)}
				}
				return nil
			})
			err := db.Update(func(tx *Tx) error { return batch(tx, "B", 40) })
			ffs.SetRule(nil)
			if err == nil || !errors.Is(err, vfs.ErrInjected) {
				t.Fatalf("commit with a torn WAL write = %v, want the injected error", err)
			}
			wantBatch(t, db, "A", 30, true)
			wantBatch(t, db, "B", 40, false)

			// A crash right now: the torn frames must be ignored.
			crashed := copyFiles(t, path)
			db2 := mustOpen(t, crashed, Config{})
			wantBatch(t, db2, "A", 30, true)
			wantBatch(t, db2, "B", 40, false)
			db2.Close()

			// The connection keeps working; the next commit overwrites the
			// torn frames.
			if err := db.Update(func(tx *Tx) error { return batch(tx, "C", 3) }); err != nil {
				t.Fatalf("commit after torn write: %v", err)
			}
			wantBatch(t, db, "C", 3, true)
			crashed = copyFiles(t, path)
			db3 := mustOpen(t, crashed, Config{})
			wantBatch(t, db3, "A", 30, true)
			wantBatch(t, db3, "B", 40, false)
			wantBatch(t, db3, "C", 3, true)
			db3.Close()
		})
	}
}

func TestFaultWALFsync(t *testing.T) {
	ffs := vfs.NewFaultFS(vfs.OS)
	path := tempDB(t)
	db := mustOpen(t, path, Config{FS: ffs, WALAutoCheckpoint: -1})
	if err := db.Update(func(tx *Tx) error { return batch(tx, "A", 20) }); err != nil {
		t.Fatal(err)
	}
	ffs.SetRule(onFile("-wal", vfs.OpSync, 1, false, vfs.Fault{Err: syscall.EIO}))
	err := db.Update(func(tx *Tx) error { return batch(tx, "B", 20) })
	if !errors.Is(err, syscall.EIO) || !errors.Is(err, ErrPoisoned) {
		t.Fatalf("commit with failing fsync = %v, want EIO and ErrPoisoned", err)
	}
	ffs.SetRule(nil)
	// The connection refuses further writes even though fsync works again.
	if _, err := db.BeginTransaction(); !errors.Is(err, ErrPoisoned) {
		t.Fatalf("write transaction after a failed fsync: %v, want ErrPoisoned", err)
	}
	if err := db.Update(func(tx *Tx) error { return batch(tx, "C", 2) }); err == nil {
		t.Fatal("Update allowed after a failed fsync")
	}
	if _, err := db.CheckpointWithMode(CheckpointFull); err == nil {
		t.Fatal("checkpoint allowed after a failed fsync")
	}
	// A fresh connection sees all of B or none of it.
	db2 := mustOpen(t, path, Config{})
	wantBatch(t, db2, "A", 20, true)
	if _, err := batchState(db2, "B", 20); err != nil {
		t.Fatal(err)
	}
	wantBatch(t, db2, "C", 2, false)
	if err := db2.Update(func(tx *Tx) error { return batch(tx, "D", 2) }); err != nil {
		t.Fatalf("fresh connection cannot write: %v", err)
	}
	db2.Close()
	db.Close()
	db3 := mustOpen(t, path, Config{})
	defer db3.Close()
	wantBatch(t, db3, "A", 20, true)
	wantBatch(t, db3, "D", 2, true)
}

func TestFaultWALFsyncGroupCommit(t *testing.T) {
	ffs := vfs.NewFaultFS(vfs.OS)
	path := tempDB(t)
	db := mustOpen(t, path, Config{FS: ffs, WALAutoCheckpoint: -1})
	if err := db.EnableGroupCommit(5e6, 4); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Tx) error { return batch(tx, "A", 5) }); err != nil {
		t.Fatal(err)
	}
	// the third group fsync fails; every committer keeps going until it
	// sees an error
	ffs.SetRule(onFile("-wal", vfs.OpSync, 3, true, vfs.Fault{Err: syscall.EIO}))
	var wg sync.WaitGroup
	errs := make([]error, 4)
	tags := make([][]string, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100 && errs[i] == nil; j++ {
				tag := fmt.Sprintf("G%d-%d", i, j)
				tags[i] = append(tags[i], tag)
				errs[i] = db.Update(func(tx *Tx) error { return batch(tx, tag, 5) })
			}
		}()
	}
	wg.Wait()
	ffs.SetRule(nil)
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no commit reported the failed fsync")
	}
	if _, err := db.BeginTransaction(); err == nil {
		t.Fatal("write transaction allowed after a failed group fsync")
	}
	db2 := mustOpen(t, path, Config{})
	for i := range errs {
		for j, tag := range tags[i] {
			present, err := batchState(db2, tag, 5)
			if err != nil {
				t.Fatal(err)
			}
			if j < len(tags[i])-1 && !present {
				t.Fatalf("batch %s was committed successfully but is missing", tag)
			}
		}
	}
	wantBatch(t, db2, "A", 5, true)
	db2.Close()
	db.Close()
}

func TestFaultENOSPC(t *testing.T) {
	for _, afterTruncate := range []bool{false, true} {
		for nth := 1; nth <= 2; nth++ {
			t.Run(fmt.Sprintf("truncated=%v/write%d", afterTruncate, nth), func(t *testing.T) {
				ffs := vfs.NewFaultFS(vfs.OS)
				path := tempDB(t)
				cfg := Config{FS: ffs, WALAutoCheckpoint: -1}
				db := mustOpen(t, path, cfg)
				if err := db.Update(func(tx *Tx) error { return batch(tx, "A", 50) }); err != nil {
					t.Fatal(err)
				}
				if afterTruncate {
					// the next commit first writes a new WAL header
					if _, err := db.CheckpointWithMode(CheckpointTruncate); err != nil {
						t.Fatal(err)
					}
				}
				ffs.SetRule(onFile("-wal", vfs.OpWrite, nth, true, vfs.Fault{Err: vfs.ENOSPC}))
				err := db.Update(func(tx *Tx) error { return batch(tx, "B", 50) })
				if nth == 2 && !afterTruncate {
					// only one write per commit: the first commit succeeds
					if err != nil {
						t.Fatal(err)
					}
					err = db.Update(func(tx *Tx) error { return batch(tx, "C", 50) })
					if !errors.Is(err, syscall.ENOSPC) {
						t.Fatalf("commit on a full disk = %v, want ENOSPC", err)
					}
					wantBatch(t, db, "C", 50, false)
				} else if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("commit on a full disk = %v, want ENOSPC", err)
				}
				bWant := nth == 2 && !afterTruncate
				wantBatch(t, db, "A", 50, true)
				wantBatch(t, db, "B", 50, bWant)
				// still full: still failing, nothing half-done
				if err := db.Update(func(tx *Tx) error { return batch(tx, "D", 3) }); !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("second commit on a full disk = %v", err)
				}
				if err := db.Close(); err != nil {
					t.Logf("close on a full disk: %v", err)
				}
				ffs.SetRule(nil)
				db = mustOpen(t, path, cfg)
				defer db.Close()
				wantBatch(t, db, "A", 50, true)
				wantBatch(t, db, "B", 50, bWant)
				wantBatch(t, db, "C", 50, false)
				wantBatch(t, db, "D", 3, false)
				// space is back: writes work again
				if err := db.Update(func(tx *Tx) error { return batch(tx, "E", 3) }); err != nil {
					t.Fatal(err)
				}
				wantBatch(t, db, "E", 3, true)
			})
		}
	}
}

// readAll reads the whole graph and returns a canonical dump.
func readAll(db *DB) (string, error) {
	var sb strings.Builder
	err := db.View(func(tx *Tx) error {
		for n, err := range tx.Nodes() {
			if err != nil {
				return err
			}
			fmt.Fprintf(&sb, "n%d %v %s\n", n.ID, n.Labels, propsString(n.Properties))
			nb, err := tx.Neighbors(n.ID)
			if err != nil {
				return err
			}
			in, err := tx.IncomingNeighbors(n.ID)
			if err != nil {
				return err
			}
			fmt.Fprintf(&sb, " out %v in %v\n", nb, in)
		}
		for e, err := range tx.Edges() {
			if err != nil {
				return err
			}
			fmt.Fprintf(&sb, "e%d %d->%d %s %s\n", e.ID, e.From, e.To, e.Label, propsString(e.Properties))
		}
		for _, l := range []string{"A", "B", "Big"} {
			ids, err := tx.NodesByLabel(l)
			if err != nil {
				return err
			}
			fmt.Fprintf(&sb, "label %s %v\n", l, ids)
		}
		ids, err := tx.NodesByProperty("i", IntValue(7))
		if err != nil {
			return err
		}
		fmt.Fprintf(&sb, "i=7 %v\n", ids)
		h, err := tx.LogicalHash()
		if err != nil {
			return err
		}
		sb.WriteString(h)
		return nil
	})
	return sb.String(), err
}

// buildReadDB makes a multi-page database with overflow values and a
// property index, optionally leaving everything in the WAL.
func buildReadDB(t *testing.T, checkpoint bool) (string, string) {
	t.Helper()
	path := tempDB(t)
	db := mustOpen(t, path, Config{WALAutoCheckpoint: -1})
	if err := db.CreatePropertyIndex("i"); err != nil {
		t.Fatal(err)
	}
	for b := 0; b < 3; b++ {
		if err := db.Update(func(tx *Tx) error {
			if err := batch(tx, "A", 150); err != nil {
				return err
			}
			_, err := tx.CreateNode("Big", Properties{"blob": BytesValue(bytes.Repeat([]byte{byte(b)}, 10000))})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if checkpoint {
		if _, err := db.CheckpointWithMode(CheckpointTruncate); err != nil {
			t.Fatal(err)
		}
	}
	want, err := readAll(db)
	if err != nil {
		t.Fatal(err)
	}
	if !checkpoint {
		// leave the WAL in place: copy the files while the connection is open
		dst := copyFiles(t, path)
		db.Close()
		return dst, want
	}
	db.Close()
	return path, want
}

func TestFaultReads(t *testing.T) {
	for _, inWAL := range []bool{false, true} {
		suffix := ".db"
		if inWAL {
			suffix = "-wal"
		}
		path, want := buildReadDB(t, !inWAL)
		kinds := map[string]vfs.Fault{"error": {Err: syscall.EIO}, "short": {Tear: 100}}
		for kind, fault := range kinds {
			t.Run(fmt.Sprintf("%s/%s", strings.TrimPrefix(suffix, "."), kind), func(t *testing.T) {
				errorsSeen := 0
				for nth := 1; nth <= 60; nth += 3 {
					ffs := vfs.NewFaultFS(vfs.OS)
					// small cache, so pages are read again and again
					db := mustOpen(t, path, Config{FS: ffs, ReadOnly: true, CacheSize: 1})
					ffs.SetRule(onFile(suffix, vfs.OpRead, nth, false, fault))
					got, err := readAll(db)
					if err != nil {
						errorsSeen++
						if errors.Is(err, ErrCorrupt) && kind == "error" {
							t.Errorf("read %d: an I/O error reported as corruption: %v", nth, err)
						}
					} else if got != want {
						t.Fatalf("read %d failed (%s) but the engine returned wrong data without an error", nth, kind)
					}
					// the failure leaves nothing bad behind in the cache
					ffs.SetRule(nil)
					got, err = readAll(db)
					if err != nil || got != want {
						t.Fatalf("read %d: after the fault cleared: err=%v, equal=%v", nth, err, got == want)
					}
					db.Close()
				}
				if errorsSeen == 0 {
					t.Fatal("no injected read failure surfaced as an error")
				}
			})
		}
	}
}

func TestFaultCheckpointFsync(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule vfs.Rule
	}{
		{"fsync-db", onFile(".db", vfs.OpSync, 1, false, vfs.Fault{Err: syscall.EIO})},
		{"write-db", onFile(".db", vfs.OpWrite, 3, false, vfs.Fault{Err: vfs.ENOSPC})},
		{"torn-write-db", onFile(".db", vfs.OpWrite, 2, false, vfs.Fault{Tear: 1000})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ffs := vfs.NewFaultFS(vfs.OS)
			path := tempDB(t)
			cfg := Config{FS: ffs, WALAutoCheckpoint: -1}
			db := mustOpen(t, path, cfg)
			for _, tag := range []string{"A", "B"} {
				if err := db.Update(func(tx *Tx) error { return batch(tx, tag, 200) }); err != nil {
					t.Fatal(err)
				}
			}
			want, err := readAll(db)
			if err != nil {
				t.Fatal(err)
			}
			ffs.SetRule(tc.rule)
			if _, err := db.CheckpointWithMode(CheckpointFull); err == nil {
				t.Fatal("checkpoint succeeded despite the fault")
			}
			ffs.SetRule(nil)
			if got, err := readAll(db); err != nil || got != want {
				t.Fatalf("after failed checkpoint: err=%v equal=%v", err, got == want)
			}
			// a second connection (fresh cache) reads the same
			db2 := mustOpen(t, path, Config{})
			if got, err := readAll(db2); err != nil || got != want {
				t.Fatalf("second connection after failed checkpoint: err=%v equal=%v", err, got == want)
			}
			db2.Close()
			// simulate a crash right after the failed checkpoint
			crashed := copyFiles(t, path)
			db3 := mustOpen(t, crashed, Config{})
			if got, err := readAll(db3); err != nil || got != want {
				t.Fatalf("crash after failed checkpoint: err=%v equal=%v", err, got == want)
			}
			db3.Close()
			db.Close()
			db = mustOpen(t, path, Config{})
			defer db.Close()
			if got, err := readAll(db); err != nil || got != want {
				t.Fatalf("after reopen: err=%v equal=%v", err, got == want)
			}
			if _, err := db.CheckpointWithMode(CheckpointTruncate); err != nil {
				t.Fatal(err)
			}
			if got, err := readAll(db); err != nil || got != want {
				t.Fatalf("after truncate: err=%v equal=%v", err, got == want)
			}
		})
	}
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestCorruptPageDetected(t *testing.T) {
	path, want := buildReadDB(t, true)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const ps = 4096
	pages := len(orig) / ps
	var nodesRoot common.PageID
	if m, err := page.DecodeMeta(orig); err == nil {
		nodesRoot = m.Roots[page.RootNodes]
	}
	detected := 0
	for pg := 1; pg < pages; pg++ {
		b := bytes.Clone(orig)
		for _, off := range []int{100, 2000, ps - 1} {
			b[pg*ps+off] ^= 0x5a
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		db, err := Open(path)
		if err != nil {
			t.Fatalf("page %d: open: %v", pg, err)
		}
		got, err := readAll(db)
		db.Close()
		if err == nil {
			if got != want {
				t.Fatalf("page %d corrupted: wrong data returned without an error", pg)
			}
			if common.PageID(pg) == nodesRoot {
				t.Fatalf("corrupt root page %d of the node tree went unnoticed", pg)
			}
			continue // a free page
		}
		detected++
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("page %d: error %v does not match ErrCorrupt", pg, err)
		}
		var ce *CorruptionError
		if !errors.As(err, &ce) || ce.Page != common.PageID(pg) {
			t.Fatalf("page %d: error %v does not carry the page", pg, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, path) || !strings.Contains(msg, fmt.Sprintf("page %d", pg)) {
			t.Fatalf("page %d: message %q does not name the file and page", pg, msg)
		}
	}
	if detected < pages/2 {
		t.Fatalf("only %d of %d corrupted pages detected", detected, pages-1)
	}
	t.Logf("%d of %d pages live and detected", detected, pages-1)
	// page 0: a flipped byte outside the magic is a checksum error at open
	b := bytes.Clone(orig)
	b[3000] ^= 1
	os.WriteFile(path, b, 0o644)
	if _, err := Open(path); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Fatalf("corrupt header: %v", err)
	}
}

func TestBadFilesLeftUntouched(t *testing.T) {
	path, _ := buildReadDB(t, true)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	newer := bytes.Clone(orig[:4096*3])
	binary.LittleEndian.PutUint32(newer[24:], page.FormatVersion+1)
	page.Seal(newer[:4096]) // CRC32C at [0:4] over [4:4096]
	badMagic := bytes.Clone(orig)
	copy(badMagic[16:24], "NOTADBXX")
	page.Seal(badMagic[:4096])
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"truncated-in-header", orig[:100], ErrNotADatabase},
		{"truncated-first-page", orig[:2000], ErrCorrupt},
		{"truncated-pages", orig[:4096*3], ErrCorrupt},
		// The magic is gone but every other page is a Sombra page, which
		// salvage reads: damage, not a foreign file (issue 7, item 6).
		{"bad-magic", badMagic, ErrCorrupt},
		{"foreign", bytes.Repeat([]byte("not a database\n"), 2000), ErrNotADatabase},
		{"newer-version", newer, ErrVersion},
		{"zeros", make([]byte, 8192), ErrNotADatabase},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".db")
			if err := os.WriteFile(p, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			before := fileHash(t, p)
			st0, _ := os.Stat(p)
			for _, ro := range []bool{false, true} {
				db, err := OpenWithConfig(p, Config{ReadOnly: ro})
				if err == nil {
					// A file cut at a page boundary past the header opens
					// (repair tools must be able to open it) and fails on
					// the first read of a missing page instead.
					_, err = readAll(db)
					db.Close()
				}
				if !errors.Is(err, tc.want) {
					t.Fatalf("read-only=%v: error %v, want %v", ro, err, tc.want)
				}
				if !strings.Contains(err.Error(), p) {
					t.Errorf("error %q does not name the file", err)
				}
			}
			if fileHash(t, p) != before {
				t.Fatal("the file was modified")
			}
			if st, _ := os.Stat(p); st.Mode() != st0.Mode() || st.Size() != st0.Size() {
				t.Fatal("the file's size or mode changed")
			}
		})
	}
}

// A checkpoint makes the WAL durable before it changes the database file:
// a commit's fsync can still be pending (it releases the writer lock first,
// and group commit delays it), and a database file holding pages of a
// transaction whose frames were lost in a power cut could not be repaired.
func TestCheckpointSyncsWALBeforeDB(t *testing.T) {
	ffs := vfs.NewFaultFS(vfs.OS)
	path := tempDB(t)
	db := mustOpen(t, path, Config{FS: ffs, WALAutoCheckpoint: -1})
	defer db.Close()
	if err := db.Update(func(tx *Tx) error { return batch(tx, "A", 50) }); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ops []string
	ffs.SetRule(func(op vfs.Op, name string, n int) *vfs.Fault {
		mu.Lock()
		defer mu.Unlock()
		kind := map[vfs.Op]string{vfs.OpRead: "read", vfs.OpWrite: "write", vfs.OpSync: "sync", vfs.OpTruncate: "truncate"}[op]
		switch {
		case strings.HasSuffix(name, "-wal"):
			ops = append(ops, kind+" wal")
		case strings.HasSuffix(name, ".db"):
			ops = append(ops, kind+" db")
		}
		return nil
	})
	if _, err := db.CheckpointWithMode(CheckpointFull); err != nil {
		t.Fatal(err)
	}
	ffs.SetRule(nil)
	firstDBWrite := -1
	walSync := -1
	for i, op := range ops {
		if op == "write db" && firstDBWrite < 0 {
			firstDBWrite = i
		}
		if op == "sync wal" && walSync < 0 {
			walSync = i
		}
	}
	if firstDBWrite < 0 {
		t.Fatalf("checkpoint wrote nothing: %v", ops)
	}
	if walSync < 0 || walSync > firstDBWrite {
		t.Fatalf("checkpoint wrote the database file before syncing the WAL: %v", ops)
	}
}

// Corruption found while reading is logged (once), with the file and page:
// the pager names the file itself, which once made the logging skip it.
func TestCorruptionIsLogged(t *testing.T) {
	path, _ := buildReadDB(t, true)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := page.DecodeMeta(orig)
	if err != nil {
		t.Fatal(err)
	}
	const ps = 4096
	root := int(m.Roots[page.RootNodes])
	orig[root*ps+2000] ^= 0x5a
	if err := os.WriteFile(path, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var mu sync.Mutex
	db := mustOpen(t, path, Config{Logger: slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs, mu: &mu}, nil))})
	defer db.Close()
	if _, err := readAll(db); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of a corrupt node tree: %v", err)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if n := strings.Count(out, `"msg":"corruption detected"`); n != 1 {
		t.Fatalf("corruption logged %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(out, fmt.Sprintf(`"page":%d`, root)) || !strings.Contains(out, path) {
		t.Fatalf("log does not name the file and page %d:\n%s", root, out)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

// repairReads counts the reads of the database file at path that a
// repair of it makes.
func repairReads(t *testing.T, path string) int {
	t.Helper()
	ffs := vfs.NewFaultFS(vfs.OS)
	db, err := OpenWithConfig(path, Config{FS: ffs, WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var reads atomic.Int64
	ffs.SetRule(func(o vfs.Op, name string, n int) *vfs.Fault {
		if o == vfs.OpRead && strings.HasSuffix(name, ".db") {
			reads.Add(1)
		}
		return nil
	})
	tx, err := db.BeginTransaction()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.repair(); err != nil {
		t.Fatal(err)
	}
	return int(reads.Load())
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// TestFaultRepairReadEIO: Repair on a healthy database whose pages fail to
// read with EIO must return that I/O error, not call a tree damaged
// (a CorruptionError advising salvage) nor rebuild a derived tree, and must
// change nothing. Each case fails database-file reads from the nth on, so
// every tree is hit by some case; the cases spread over the reads a repair
// of this file makes, counted first (read-ahead makes them fewer than the
// pages read).
func TestFaultRepairReadEIO(t *testing.T) {
	src := filepath.Join(t.TempDir(), "r.db")
	db, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Tx) error { return batch(tx, "A", 800) }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CheckpointWithMode(CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	db.Close()
	reads := repairReads(t, copyFiles(t, src))
	if reads < 8 {
		t.Fatalf("a repair made %d reads of the database file; the cases need at least 8", reads)
	}
	for _, nth := range []int{2, reads / 4, reads / 2, reads} {
		t.Run(fmt.Sprint("read ", nth), func(t *testing.T) {
			path := copyFiles(t, src)
			ffs := vfs.NewFaultFS(vfs.OS)
			db, err := OpenWithConfig(path, Config{FS: ffs, WALAutoCheckpoint: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			failed := 0
			rule := onFile(".db", vfs.OpRead, nth, true, vfs.Fault{Err: syscall.EIO})
			ffs.SetRule(func(o vfs.Op, name string, n int) *vfs.Fault {
				f := rule(o, name, n)
				if f != nil {
					failed++
				}
				return f
			})
			tx, err := db.BeginTransaction()
			if err != nil {
				t.Fatal(err)
			}
			st, err := tx.repair()
			tx.Rollback()
			if err == nil {
				t.Fatalf("repair with %d failed reads succeeded: %+v", failed, st)
			}
			if !errors.Is(err, syscall.EIO) || errors.Is(err, ErrCorrupt) {
				t.Fatalf("repair = %v, want the EIO and not ErrCorrupt", err)
			}
			// The disk recovered: the same connection reads again (a failed
			// read of the stored access policy is not remembered) ...
			ffs.SetRule(nil)
			wantBatch(t, db, "A", 800, true)
			// ... and the file was not changed.
			db.Close()
			again, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer again.Close()
			wantBatch(t, again, "A", 800, true)
		})
	}
}
