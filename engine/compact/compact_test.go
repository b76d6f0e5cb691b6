package compact

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/sombradb/sombra/engine"
)

func TestCompactKeepsDataAndShrinks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreatePropertyIndex("k"); err != nil {
		t.Fatal(err)
	}
	var ids []engine.NodeID
	err = db.Update(func(tx *engine.Tx) error {
		for i := 0; i < 20000; i++ {
			id, err := tx.CreateNode(fmt.Sprintf("L%d", i%3), engine.Properties{"k": engine.IntValue(int64(i % 100)), "pad": engine.StringValue(fmt.Sprintf("%0200d", i))})
			if err != nil {
				return err
			}
			if len(ids) > 0 {
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
	err = db.Update(func(tx *engine.Tx) error {
		for i, id := range ids {
			if i%10 < 7 {
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
	want, _ := db.LogicalHash()
	// Another connection is open: compaction must refuse.
	if _, err := Compact(path, Options{}); !errors.Is(err, engine.ErrBusy) {
		t.Fatalf("compact with another connection open: %v", err)
	}
	db.Close()
	an, err := Analyze(path)
	if err != nil || an.FragmentationPercent < 5 {
		t.Fatalf("analysis %+v %v", an, err)
	}
	rep, err := Compact(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.SizeAfter >= rep.SizeBefore*6/10 || rep.LogicalHash != want {
		t.Fatalf("report %+v", rep)
	}
	db, err = engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.LogicalHash()
	if err != nil || got != want {
		t.Fatalf("hash after compaction %s %v, want %s", got, err, want)
	}
	ids2, _ := db.NodesByProperty("k", engine.IntValue(7))
	if len(ids2) == 0 {
		t.Fatal("property index lost")
	}
	// and the compacted database takes writes
	if err := db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("New", nil); return err }); err != nil {
		t.Fatal(err)
	}
	an, _ = analyze(db)
	if an.FragmentationPercent > 5 {
		t.Fatalf("fragmentation after compaction %.1f", an.FragmentationPercent)
	}
}

// The page-fill estimate sees space that free pages alone do not show:
// sparse leaves left by deletes.
func TestAnalyzeEstimatesReclaimableSpace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *engine.Tx) error {
		for i := 0; i < 20000; i++ {
			if _, err := tx.CreateNode("N", engine.Properties{"pad": engine.StringValue(fmt.Sprintf("%0100d", i))}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *engine.Tx) error {
		for i := 1; i <= 20000; i++ {
			if i%3 != 0 {
				if err := tx.DeleteNode(engine.NodeID(i)); err != nil {
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
	if an.EstimatedReclaimablePercent < an.FragmentationPercent || an.PageFillPercent > 80 {
		t.Fatalf("analysis %+v", an)
	}
	// The estimate is within a few pages of what compaction achieved.
	if d := int64(an.EstimatedPagesAfter) - int64(rep.PagesAfter); d < -int64(rep.PagesAfter)/10 || d > int64(rep.PagesAfter)/10 {
		t.Fatalf("estimated %d pages after compaction, got %d (analysis %+v)", an.EstimatedPagesAfter, rep.PagesAfter, an)
	}
}
