package commands_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/encryption"
)

// Issue 7 item 16: the tools archive the WAL of an encrypted database
// sealed, list and verify the archive (verify needs the key and says so),
// and restore --until replays it with the key to exactly the state of the
// requested time; without the key, with another, or from a tampered
// segment they fail with one line and write nothing (real processes).
func TestToolsSealedArchivePointInTime(t *testing.T) {
	bin := binaries(t)
	dir := t.TempDir()
	key := strings.Repeat("cd", 32)
	sh := newShell(t, bin, dir, "SOMBRA_ENCRYPTION_KEY="+key, "SOMBRA_USER=")
	c, err := encryption.NewEncryptionConfig().WithKey(mustHex(t, key))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "enc.db")
	// commit adds n nodes carrying a marker and returns the logical hash
	// and a time after the last commit.
	commit := func(n int) (string, time.Time) {
		db, err := engine.OpenWithConfig(path, engine.Config{Encryption: c})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for i := 0; i < n; i++ {
			if err := db.Update(func(tx *engine.Tx) error {
				_, err := tx.CreateNode("Secret", engine.Properties{"v": engine.StringValue("PLAINTEXT-MARKER")})
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		h, err := db.LogicalHash()
		if err != nil {
			t.Fatal(err)
		}
		at := time.Now()
		time.Sleep(20 * time.Millisecond) // the next commit is later
		return h, at
	}
	commit(30)
	sh.ok(`sombra-backup archive-wal --db enc.db --dir b --enable`)
	sh.ok(`sombra-backup --type full --db enc.db --output b/full`)
	var hash [4]string
	var at [4]time.Time
	for k := 1; k <= 3; k++ {
		hash[k], at[k] = commit(10 * k)
	}
	sh.ok(`sombra-backup archive-wal --db enc.db --dir b`)

	var list struct {
		Segments []struct {
			Name   string  `json:"name"`
			Path   string  `json:"path"`
			Sealed bool    `json:"sealed"`
			Error  *string `json:"error"`
		} `json:"segments"`
	}
	// Listing needs no key.
	if err := json.Unmarshal([]byte(sh.ok(`SOMBRA_ENCRYPTION_KEY= sombra-backup list --dir b --wal --json`)), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Segments) == 0 {
		t.Fatal("no segments listed")
	}
	for i := range list.Segments {
		s := &list.Segments[i]
		if !filepath.IsAbs(s.Path) {
			s.Path = filepath.Join(dir, s.Path)
		}
		if !s.Sealed || s.Error != nil {
			t.Fatalf("segment %+v: want sealed and readable", s)
		}
		b, err := os.ReadFile(s.Path)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "PLAINTEXT-MARKER") || strings.Contains(string(b), "Secret") {
			t.Fatalf("%s holds plaintext", s.Path)
		}
	}
	sh.ok(`sombra-backup verify --dir b --wal`)
	out, errOut, code := sh.run(`SOMBRA_ENCRYPTION_KEY= sombra-backup verify --dir b --wal`)
	if code != 1 || !strings.Contains(errOut, "could not verify") || !strings.Contains(errOut, "key required") || strings.Contains(errOut, "corrupt") {
		t.Errorf("verify --wal without the key: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}

	until := func(k int) string { return at[k].UTC().Format(time.RFC3339Nano) }
	for k := 1; k <= 3; k++ {
		sh.ok(fmt.Sprintf(`sombra-backup restore --dir b --until %s --db r%d.db`, until(k), k))
		db, err := engine.OpenWithConfig(filepath.Join(dir, fmt.Sprintf("r%d.db", k)), engine.Config{Encryption: c, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		h, err := db.LogicalHash()
		db.Close()
		if err != nil || h != hash[k] {
			t.Fatalf("restore --until t%d: hash %s (%v), want %s", k, h, err, hash[k])
		}
	}

	// Without the key or with another: one line, exit 1, nothing written.
	for name, env := range map[string]string{"no key": "", "wrong key": strings.Repeat("ef", 32)} {
		out, errOut, code := sh.run(fmt.Sprintf(`SOMBRA_ENCRYPTION_KEY=%s sombra-backup restore --dir b --until %s --db nokey.db`, env, until(2)))
		if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "key") {
			t.Errorf("%s: exit %d\nstdout: %s\nstderr: %s", name, code, out, errOut)
		}
		if _, err := os.Stat(filepath.Join(dir, "nokey.db")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: nokey.db written (%v)", name, err)
		}
	}

	// A byte flipped in the newest segment: restore past it and verify
	// --wal report corruption (exit 4); restore writes nothing.
	last := list.Segments[len(list.Segments)-1].Path
	b, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(last, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = sh.run(fmt.Sprintf(`sombra-backup restore --dir b --until %s --db bad.db`, until(3)))
	if code != 4 || !strings.Contains(errOut, filepath.Base(last)) {
		t.Errorf("restore over a tampered segment: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bad.db written (%v)", err)
	}
	if out, errOut, code := sh.run(`sombra-backup verify --dir b --wal`); code != 4 {
		t.Errorf("verify --wal of a tampered segment: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	// Cut short: list --wal flags it (exit 4, no key needed), and restore
	// --until past it fails rather than stopping early.
	if err := os.WriteFile(last, b[:len(b)-64], 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = sh.run(`SOMBRA_ENCRYPTION_KEY= sombra-backup list --dir b --wal`)
	if code != 4 || !strings.Contains(out, "DAMAGED") || strings.Count(errOut, filepath.Base(last)) != 1 {
		t.Errorf("list --wal with a truncated segment: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	out, errOut, code = sh.run(fmt.Sprintf(`sombra-backup restore --dir b --until %s --db cut.db`, until(3)))
	if code != 4 || !strings.Contains(errOut, filepath.Base(last)) {
		t.Errorf("restore over a truncated segment: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "cut.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cut.db written (%v)", err)
	}
}
