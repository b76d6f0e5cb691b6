package healthcheck_test

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/health"
	"github.com/sombradb/sombra/internal/cli/clitest"
	"github.com/sombradb/sombra/internal/commands/fixture"
)

// A page written after the last verification and then damaged in the
// database file is found by the default check, although the sample alone
// deterministically misses it: the check verifies every page the change
// log says was written since the LSN recorded in NAME.db-verified.
func TestDefaultCheckVerifiesPagesWrittenSinceLastVerification(t *testing.T) {
	_, path := newDB(t, fixture.Default)
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 1500)
	var ids []engine.NodeID
	for b := 0; b < 8; b++ { // ~2,000 pages: the 64-page sample takes every ~30th
		if err := db.Update(func(tx *engine.Tx) error {
			for i := 0; i < 600; i++ {
				id, err := tx.CreateNode("Big", engine.Properties{"pad": engine.StringValue(pad)})
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Real clock: the record's time is compared with the next check's.
	now := builder(nil, plenty)
	args := []string{"--db", path, "--json"}
	out, errOut, code := clitest.RunCommand(t, now, args...)
	if code != 0 {
		t.Fatalf("first check: code %d %s %s", code, out, errOut)
	}
	if c := check(decode(t, out), "page_checksums"); !strings.Contains(c.Message, "all ") {
		t.Fatalf("first check without a record must verify every page: %+v", c)
	}
	var rec struct {
		LSN uint64 `json:"lsn"`
	}
	b, err := os.ReadFile(path + health.VerifiedSuffix)
	if err != nil || json.Unmarshal(b, &rec) != nil || rec.LSN == 0 {
		t.Fatalf("no verification record: %s %v", b, err)
	}

	// One commit after the verification, checkpointed into the file.
	db, err = engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *engine.Tx) error {
		for i := 0; i < len(ids); i += 97 {
			if err := tx.SetNodeProperty(ids[i], "seen", engine.StringValue("yes")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	in, err := db.Info()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Damage a page that commit wrote (its header LSN is above the record)
	// and that the sample does not visit.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := int(in.PageSize)
	n := len(data) / ps
	step := n / health.DefaultSamplePages
	if step < 2 {
		t.Fatalf("%d pages: too few for the sample to miss one", n)
	}
	victim := -1
	for id := 1; id < n && victim < 0; id++ {
		if binary.LittleEndian.Uint64(data[id*ps+4:]) > rec.LSN && id%step != 0 {
			victim = id
		}
	}
	if victim < 0 {
		t.Fatal("the commit wrote no page outside the sample")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	off := int64(victim*ps + ps/2)
	if _, err := f.WriteAt([]byte{data[off] ^ 0xff}, off); err != nil {
		t.Fatal(err)
	}
	f.Close()

	// With only the sample, the damage is missed (the defect).
	out, _, code = clitest.RunCommand(t, now, "--db", path, "--json", "--full-verify-age", "7d")
	r := decode(t, out)
	c := check(r, "page_checksums")
	if code != 2 || c.Status != health.Unhealthy {
		t.Fatalf("damaged page %d (of %d) written since the last verification: code=%d %+v", victim, n, code, c)
	}
	if fv := check(r, "full_verification_age"); fv.Status != health.Healthy {
		t.Errorf("full verification moments ago: %+v", fv)
	}

	// Repaired, the same check passes, and it was incremental (the change
	// log reached back to the record), not a fallback to every page.
	f, err = os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data[off:off+1], off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, _, code = clitest.RunCommand(t, now, args...)
	c = check(decode(t, out), "page_checksums")
	if code != 0 || !strings.Contains(c.Message, "written since the last verification") {
		t.Errorf("repaired: code=%d, want an incremental check: %+v", code, c)
	}
}
