package repair

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/integrity"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/internal/fixtures"
)

// TestRandomDamage damages random pages of the healthy fixture and checks
// that salvage never fails or panics and always writes a database that
// passes a full check, and that repair either succeeds (and the database
// is then healthy) or leaves it untouched with advice. With reseal the
// garbage carries a valid checksum, the worst case for a decoder.
func TestRandomDamage(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(fixtures.Dir(), fixtures.Healthy))
	if err != nil {
		t.Fatal(err)
	}
	rounds := 40
	if testing.Short() {
		rounds = 8
	}
	for i := 0; i < rounds; i++ {
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		reseal := i%2 == 1
		b := append([]byte(nil), src...)
		pages := len(b) / page.DefaultSize
		for n := 1 + rng.IntN(3); n > 0; n-- {
			id := 1 + rng.IntN(pages-1)
			p := b[id*page.DefaultSize : (id+1)*page.DefaultSize]
			off, l := 16+rng.IntN(page.DefaultSize-16), 1+rng.IntN(64)
			for j := off; j < min(off+l, len(p)); j++ {
				p[j] = byte(rng.Uint32())
			}
			if reseal {
				page.Seal(p)
			}
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "r.db")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		r := NewDatabaseRepair(path)
		if _, err := r.SalvageNodes(); err != nil {
			t.Fatalf("round %d: salvage nodes: %v", i, err)
		}
		out := filepath.Join(dir, "out.db")
		rep, err := r.SalvageTo(out)
		if err != nil || !rep.Verified {
			t.Fatalf("round %d: salvage: %v %+v", i, err, rep)
		}
		// Behind a valid checksum, garbage can defeat the engine's readers:
		// verify and repair must then fail with ErrCorrupt, not panic.
		if _, err := r.VerifyIntegrity(); err != nil && !(reseal && errors.Is(err, engine.ErrCorrupt)) {
			t.Fatalf("round %d: verify: %v", i, err)
		}
		before := sums(t, path)
		fix, err := r.Repair()
		if reseal && errors.Is(err, engine.ErrCorrupt) {
			continue
		}
		if err != nil {
			t.Fatalf("round %d: repair: %v", i, err)
		}
		if fix.Success {
			chk, err := integrity.Check(path, integrity.Options{Full: true})
			if err != nil || !chk.IsHealthy() {
				t.Fatalf("round %d: repair claimed success: %v %+v", i, err, chk.Issues)
			}
		} else if sums(t, path) != before && fix.Advice == "" {
			t.Fatalf("round %d: failed repair changed the database without advice", i)
		}
		db, err := engine.OpenWithConfig(path, engine.Config{ReadOnly: true})
		if err != nil && !errors.Is(err, engine.ErrCorrupt) {
			t.Fatalf("round %d: open after repair: %v", i, err)
		}
		if db != nil {
			db.Close()
		}
	}
}
