package changelog

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/vfs"
)

func TestChangedCoverage(t *testing.T) {
	db := filepath.Join(t.TempDir(), "x.db")
	fs := vfs.OS
	// Not enabled: appends are dropped and nothing is covered.
	if err := Append(fs, db, 7, 0, 5, []common.PageID{1}); err != nil {
		t.Fatal(err)
	}
	if _, covered, _ := Changed(fs, db, 7, 0, 5); covered {
		t.Fatal("covered without a log")
	}
	if err := Enable(fs, db, 7); err != nil {
		t.Fatal(err)
	}
	Append(fs, db, 7, 0, 5, []common.PageID{1, 2})
	Append(fs, db, 7, 5, 9, []common.PageID{3, 2})
	Append(fs, db, 7, 9, 12, []common.PageID{8})
	pages, covered, err := Changed(fs, db, 7, 4, 12)
	if err != nil || !covered || !slices.Equal(pages, []common.PageID{1, 2, 3, 8}) {
		t.Fatalf("pages %v covered %v err %v", pages, covered, err)
	}
	if pages, covered, _ := Changed(fs, db, 7, 9, 12); !covered || !slices.Equal(pages, []common.PageID{8}) {
		t.Fatalf("tail: %v %v", pages, covered)
	}
	// A hole (a checkpoint that was not recorded) is detected.
	Append(fs, db, 7, 14, 20, []common.PageID{9})
	if _, covered, _ := Changed(fs, db, 7, 9, 20); covered {
		t.Fatal("hole 12-14 not detected")
	}
	// Another file id's log is ignored, then replaced on append.
	if _, covered, _ := Changed(fs, db, 8, 0, 5); covered {
		t.Fatal("foreign log used")
	}
	Append(fs, db, 8, 30, 31, []common.PageID{4})
	if _, covered, _ := Changed(fs, db, 7, 0, 5); covered {
		t.Fatal("old history survived a file id change")
	}
	if p, covered, _ := Changed(fs, db, 8, 30, 31); !covered || !slices.Equal(p, []common.PageID{4}) {
		t.Fatal("new history missing")
	}
	// A torn tail record is ignored.
	f, _ := os.OpenFile(Path(db), os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("SCLR\x05\x00\x00\x00garbage"))
	f.Close()
	if _, covered, err := Changed(fs, db, 8, 30, 31); !covered || err != nil {
		t.Fatal("torn tail broke the log")
	}
}

func TestRotation(t *testing.T) {
	db := filepath.Join(t.TempDir(), "x.db")
	old := MaxSize
	MaxSize = 200
	defer func() { MaxSize = old }()
	Enable(vfs.OS, db, 1)
	for i := 0; i < 20; i++ {
		Append(vfs.OS, db, 1, common.LSN(i), common.LSN(i+1), []common.PageID{common.PageID(i)})
	}
	// Only the last two generations remain: recent ranges are covered,
	// old ones are not (and the caller would scan).
	if _, covered, _ := Changed(vfs.OS, db, 1, 17, 20); !covered {
		t.Fatal("recent range not covered")
	}
	if _, covered, _ := Changed(vfs.OS, db, 1, 0, 20); covered {
		t.Fatal("rotated-away range covered")
	}
	st, _ := os.Stat(Path(db))
	if st.Size() > 2*200 {
		t.Fatalf("log grew to %d", st.Size())
	}
}
