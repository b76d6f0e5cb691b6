package integrity

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/page"
)

func build(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "i.db")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreatePropertyIndex("k"); err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *engine.Tx) error {
		var prev engine.NodeID
		for i := 0; i < 3000; i++ {
			id, err := tx.CreateNode(fmt.Sprintf("L%d", i%4), engine.Properties{"k": engine.IntValue(int64(i % 50)), "s": engine.StringValue(fmt.Sprintf("%080d", i))})
			if err != nil {
				return err
			}
			if prev != 0 {
				if _, err := tx.CreateEdge(prev, id, "NEXT", nil); err != nil {
					return err
				}
			}
			prev = id
		}
		for i := 1; i < 1000; i += 3 {
			if err := tx.DeleteNode(engine.NodeID(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	db.Close()
	return path
}

func TestHealthyDatabase(t *testing.T) {
	path := build(t)
	rep, err := Check(path, Options{Full: true})
	if err != nil || !rep.IsHealthy() {
		t.Fatalf("report %+v, %v", rep, err)
	}
	if rep.PagesChecked != int(rep.PageCount) {
		t.Fatalf("checked %d of %d pages", rep.PagesChecked, rep.PageCount)
	}
}

func TestCorruptPageIsReported(t *testing.T) {
	path := build(t)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("garbage!"), 5*4096+100)
	f.Close()
	rep, err := Check(path, Options{Full: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.HasCorruption() {
		t.Fatalf("corruption not found: %+v", rep)
	}
	found := false
	for _, is := range rep.Issues {
		if is.Page == 5 && is.Kind == "checksum" {
			found = true
		}
	}
	if !found {
		t.Fatalf("page 5 not named: %+v", rep.Issues)
	}
	// header damage: error matches ErrCorrupt
	f, _ = os.OpenFile(path, os.O_RDWR, 0)
	f.WriteAt([]byte{0xff}, 40)
	f.Close()
	if _, err := Check(path, Options{}); !errors.Is(err, engine.ErrCorrupt) {
		t.Fatalf("header corruption: %v", err)
	}
}

// A wrecked file has more issues than a report lists: the report says how
// many there are and that the list was cut.
func TestIssueListCutIsReported(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.db")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *engine.Tx) error {
		for i := 0; i < 1300; i++ {
			if _, err := tx.CreateNode("Big", engine.Properties{"s": engine.StringValue(fmt.Sprintf("%03000d", i))}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	db.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const ps = 4096
	pages := len(b) / ps
	if pages <= MaxIssues+100 {
		t.Fatalf("only %d pages", pages)
	}
	for pg := 1; pg < pages; pg++ {
		b[pg*ps+ps/2] ^= 0xff
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Issues) != MaxIssues || !rep.IssuesTruncated || rep.IssuesTotal != pages-1 {
		t.Fatalf("listed %d, total %d, truncated %v; want %d listed of %d, truncated", len(rep.Issues), rep.IssuesTotal, rep.IssuesTruncated, MaxIssues, pages-1)
	}
	if rep.SeverityCounts[Critical] != pages-1 || !rep.HasCorruption() {
		t.Fatalf("severity counts %v", rep.SeverityCounts)
	}
}

// TestAdjacencyMismatchIsNamed alters the other-endpoint value of one
// adjacency entry on disk (resealing the page, so only the graph check can
// see it): the streaming check's digests disagree and its detail pass must
// name the entry and count the edge's entry as missing.
func TestAdjacencyMismatchIsNamed(t *testing.T) {
	path := build(t)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	buf := make([]byte, 4096)
	done := false
	for id := int64(1); id < st.Size()/4096 && !done; id++ {
		if _, err := f.ReadAt(buf, id*4096); err != nil {
			t.Fatal(err)
		}
		if page.PageType(buf) != page.TypeLeaf || buf[13] != page.RootAdj+1 || binary.LittleEndian.Uint16(buf[16:]) == 0 {
			continue
		}
		off := int(binary.LittleEndian.Uint16(buf[32:])) // first cell: key len u16, value len u32, key, value
		kl := int(binary.LittleEndian.Uint16(buf[off:]))
		buf[off+6+kl+7] ^= 0x5a
		page.Seal(buf)
		if _, err := f.WriteAt(buf, id*4096); err != nil {
			t.Fatal(err)
		}
		done = true
	}
	if !done {
		t.Fatal("no adjacency leaf found")
	}
	rep, err := Check(path, Options{Full: true})
	if err != nil {
		t.Fatal(err)
	}
	var named, missing bool
	for _, is := range rep.Issues {
		named = named || is.Kind == "adjacency" && strings.Contains(is.Description, "has no matching edge")
		missing = missing || is.Kind == "adjacency" && strings.Contains(is.Description, "1 adjacency entries are missing")
	}
	if !named || !missing {
		t.Fatalf("adjacency damage not named: %+v", rep.Issues)
	}
}
