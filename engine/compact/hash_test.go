package compact

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/vfs"
)

// misdirectFS writes, in place of the Nth page image written to a file
// named *.compact, the image written before it (a misdirected write: the
// previous buffer reached the disk twice). Every page on disk still carries a valid checksum, so
// only the logical hash of the new file can tell that it lost data.
type misdirectFS struct {
	vfs.FS
	nth int

	mu    sync.Mutex
	count int
	prev  []byte
}

type misdirectFile struct {
	vfs.File
	fs *misdirectFS
}

func (m *misdirectFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	f, err := m.FS.OpenFile(name, flag, perm)
	if err != nil || !strings.HasSuffix(name, ".compact") || flag&os.O_CREATE == 0 {
		return f, err
	}
	return &misdirectFile{File: f, fs: m}, nil
}

func (f *misdirectFile) WriteAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	f.fs.count++
	data := b
	if f.fs.count == f.fs.nth {
		data = f.fs.prev
	}
	f.fs.prev = bytes.Clone(b)
	f.fs.mu.Unlock()
	if _, err := f.File.WriteAt(data, off); err != nil {
		return 0, err
	}
	return len(b), nil
}

func TestCompactRefusesFileWithOtherGraph(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *engine.Tx) error {
		for i := 0; i < 3000; i++ {
			if _, err := tx.CreateNode("N", engine.Properties{"pad": engine.StringValue(fmt.Sprintf("%0100d", i))}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Page images are written in build order: the 5th page gets the 4th's
	// image, both leaves of the node tree (3000 records fill dozens).
	fsys := &misdirectFS{FS: vfs.OS, nth: 5}
	_, err = Compact(path, Options{FS: fsys})
	if !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("compaction with a misdirected write: %v, want %v", err, ErrHashMismatch)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("the original file was changed")
	}
	if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
	// Without the fault the same compaction succeeds.
	if _, err := Compact(path, Options{}); err != nil {
		t.Fatal(err)
	}
}

// One fragmentation figure: on a churned database, what sombra-info, the
// health check and --analyze report (engine.Info) is within 5 points of
// what the compaction then reclaims.
func TestFragmentationFigureMatchesCompaction(t *testing.T) {
	for _, keep := range []int{2, 5, 10} {
		t.Run(fmt.Sprintf("keep-1-in-%d", keep), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.db")
			db, err := engine.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.CreatePropertyIndex("k"); err != nil {
				t.Fatal(err)
			}
			var ids []engine.NodeID
			err = db.Update(func(tx *engine.Tx) error {
				for i := 0; i < 15000; i++ {
					id, err := tx.CreateNode("N", engine.Properties{"k": engine.IntValue(int64(i % 100)),
						"pad": engine.StringValue(fmt.Sprintf("%0*d", 50+i%150, i))})
					if err != nil {
						return err
					}
					if len(ids) > 0 && i%3 == 0 {
						if _, err := tx.CreateEdge(id, ids[len(ids)-1], "E", nil); err != nil {
							return err
						}
					}
					ids = append(ids, id)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, id := range ids { // delete in many transactions, as an application would
				if i%keep == 0 {
					continue
				}
				if err := db.Update(func(tx *engine.Tx) error { return tx.DeleteNode(id) }); err != nil {
					t.Fatal(err)
				}
				if i > 600 {
					break
				}
			}
			err = db.Update(func(tx *engine.Tx) error {
				for i, id := range ids[602:] {
					if i%keep != 0 {
						if err := tx.DeleteNode(id); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
			an, err := Analyze(path)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Compact(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			actual := 100 * float64(rep.BytesReclaimed) / float64(rep.SizeBefore)
			t.Logf("figure %.1f%%, compaction reclaimed %.1f%% (%d -> %d bytes); page fill %.0f%%",
				an.FragmentationPercent, actual, rep.SizeBefore, rep.SizeAfter, an.PageFillPercent)
			if d := an.FragmentationPercent - actual; d > 5 || d < -5 {
				t.Fatalf("figure %.1f%%, compaction reclaimed %.1f%%", an.FragmentationPercent, actual)
			}
			if an.FileSize != rep.SizeBefore {
				t.Fatalf("analysed a file of %d bytes, compacted one of %d", an.FileSize, rep.SizeBefore)
			}
		})
	}
}
