package engine_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/sombradb/sombra/engine"
)

// The range query gives the same nodes with and without an index, in
// value order with one, and refuses bounds it cannot order.
func TestNodesByPropertyRange(t *testing.T) {
	db, err := engine.Open(filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ages := []int64{40, -5, 17, 30, 17, 99, 0}
	var ids []engine.NodeID
	err = db.Update(func(tx *engine.Tx) error {
		for _, a := range ages {
			id, err := tx.CreateNode("p", engine.Properties{"age": engine.IntValue(a)})
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		_, err := tx.CreateNode("p", engine.Properties{"age": engine.StringValue("20")}) // another kind: never in an int range
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	scan, err := db.NodesByPropertyRange("age", engine.IntValue(0), engine.IntValue(30))
	if err != nil {
		t.Fatal(err)
	}
	want := []engine.NodeID{ids[2], ids[3], ids[4], ids[6]} // id order without an index
	if !slices.Equal(scan, want) {
		t.Fatalf("scan: %v, want %v", scan, want)
	}
	if err := db.CreatePropertyIndex("age"); err != nil {
		t.Fatal(err)
	}
	got, err := db.NodesByPropertyRange("age", engine.IntValue(0), engine.IntValue(30))
	if err != nil {
		t.Fatal(err)
	}
	want = []engine.NodeID{ids[6], ids[2], ids[4], ids[3]} // 0, 17, 17, 30: value order
	if !slices.Equal(got, want) {
		t.Fatalf("index: %v, want %v", got, want)
	}
	if got, _ := db.NodesByPropertyRange("age", engine.IntValue(-100), engine.IntValue(-1)); !slices.Equal(got, []engine.NodeID{ids[1]}) {
		t.Fatalf("negative range: %v", got)
	}
	if got, _ := db.NodesByPropertyRange("age", engine.IntValue(100), engine.IntValue(200)); len(got) != 0 {
		t.Fatalf("empty range: %v", got)
	}
	if _, err := db.NodesByPropertyRange("age", engine.IntValue(0), engine.FloatValue(1)); err == nil {
		t.Fatal("mixed kinds accepted")
	}
	var lsn uint64
	tx, _ := db.BeginTransaction()
	if _, err := tx.CreateNode("p", nil); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	lsn = tx.CommitLSN()
	if last, _ := db.LastLSN(); lsn == 0 || lsn != last {
		t.Fatalf("CommitLSN %d, LastLSN %d", lsn, last)
	}
}
