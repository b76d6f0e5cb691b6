package repair

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/integrity"
	"github.com/sombradb/sombra/engine/vfs"
	"github.com/sombradb/sombra/internal/fixtures"
)

// imageHash opens a database image (a copy: it may be written) and returns
// its logical hash after a full integrity check.
func imageHash(path string) (string, error) {
	rep, err := integrity.Check(path, integrity.Options{Full: true})
	if err != nil {
		return "", fmt.Errorf("integrity check: %w", err)
	}
	if !rep.IsHealthy() {
		return "", fmt.Errorf("integrity check: %d issues, first %+v", len(rep.Issues), rep.Issues[0])
	}
	db, err := engine.Open(path)
	if err != nil {
		return "", err
	}
	defer db.Close()
	return db.LogicalHash()
}

// TestPowerLossSalvageOutput: salvage into a new output and over an old
// one (whose last commits are only in its WAL) through a vfs.CrashFS, cut
// at every rename, link, remove and directory fsync (six cuts each: every
// mode, Scramble four times) and at every fifth other operation. After
// every cut the output is missing (a new output only), the old database
// whole with all its commits, or the salvaged one whole.
func TestPowerLossSalvageOutput(t *testing.T) {
	src := fixture(t, fixtures.Healthy)
	want := logicalHash(t, src)
	seed := rand.Uint64()
	if s, err := strconv.ParseUint(os.Getenv("SOMBRA_POWERLOSS_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (SOMBRA_POWERLOSS_SEED=%d reproduces)", seed, seed)
	for _, overwrite := range []bool{false, true} {
		t.Run(fmt.Sprintf("overwrite=%v", overwrite), func(t *testing.T) {
			root := t.TempDir()
			out := filepath.Join(root, "out.db")
			var oldHash string
			if overwrite {
				oldHash = oldOutput(t, out)
			}
			fs, err := vfs.NewCrashFS(vfs.OS, root)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(seed, 7))
			imgs := t.TempDir()
			var mu sync.Mutex
			var cuts []string
			var cutErr error
			cutNow := func(ev vfs.CrashEvent, mode vfs.CrashMode) {
				dir := filepath.Join(imgs, fmt.Sprint(len(cuts)))
				if err := fs.Crash(dir, mode, rand.New(rand.NewPCG(rng.Uint64(), 0))); err != nil {
					cutErr = err
					return
				}
				cuts = append(cuts, fmt.Sprintf("%s (op %d %s %s, %v)", dir, ev.Seq, ev.Op, filepath.Base(ev.Name), mode))
			}
			namespace := 0
			fs.SetHook(func(ev vfs.CrashEvent) {
				mu.Lock()
				defer mu.Unlock()
				switch ev.Op {
				case "rename", "link", "remove", "syncdir":
					namespace++
					// under Scramble any prefix of the directory's
					// pending changes survives: several draws
					for _, m := range []vfs.CrashMode{vfs.DropUnsynced, vfs.TearLast, vfs.Scramble, vfs.Scramble, vfs.Scramble, vfs.Scramble} {
						cutNow(ev, m)
					}
				default:
					if ev.Seq%5 == 0 {
						cutNow(ev, vfs.CrashMode(rng.IntN(3)))
					}
				}
			})
			r := NewDatabaseRepair(src)
			r.FS = fs
			if _, err := r.SalvageToWithOptions(out, SalvageOptions{Overwrite: overwrite}); err != nil {
				t.Fatal(err)
			}
			fs.SetHook(nil)
			cutNow(vfs.CrashEvent{Seq: fs.Ops(), Op: "end"}, vfs.Scramble)
			if cutErr != nil {
				t.Fatal(cutErr)
			}
			sawNew, sawOld := false, false
			for i, c := range cuts {
				img := filepath.Join(imgs, fmt.Sprint(i), "out.db")
				if _, err := os.Stat(img); errors.Is(err, os.ErrNotExist) {
					if overwrite {
						t.Fatalf("cut %s: the old output is gone", c)
					}
					continue
				}
				h, err := imageHash(img)
				if err != nil {
					t.Fatalf("cut %s: %v", c, err)
				}
				if i == len(cuts)-1 && h != want {
					t.Fatalf("the cut after the salvage returned, %s, lacks the salvaged output", c)
				}
				switch {
				case h == want:
					sawNew = true
				case overwrite && h == oldHash:
					sawOld = true
				default:
					t.Fatalf("cut %s: the output is neither the old database nor the salvaged one (hash %.12s)", c, h)
				}
			}
			if !sawNew || overwrite && !sawOld {
				t.Fatalf("no cut saw the new output (%v) or the old one (%v)", sawNew, sawOld)
			}
			t.Logf("%d cuts, %d of them at %d renames, links, removes and directory fsyncs", len(cuts), 6*namespace, namespace)
		})
	}
}
