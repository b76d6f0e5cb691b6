package engine

import (
	"errors"
	"testing"
)

func TestImportKeepsIDs(t *testing.T) {
	db := mustOpen(t, tempDB(t), Config{})
	defer db.Close()
	err := db.Update(func(tx *Tx) error {
		if err := tx.importNode(10, []string{"A"}, Properties{"k": IntValue(1)}); err != nil {
			return err
		}
		if err := tx.importNode(4, nil, nil); err != nil {
			return err
		}
		if err := tx.importNode(10, nil, nil); !errors.Is(err, ErrExists) {
			t.Errorf("duplicate node: %v", err)
		}
		if err := tx.importNode(0, nil, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("node id 0: %v", err)
		}
		if err := tx.importEdge(7, 10, 4, "E", nil); err != nil {
			return err
		}
		if err := tx.importEdge(7, 4, 10, "E", nil); !errors.Is(err, ErrExists) {
			t.Errorf("duplicate edge: %v", err)
		}
		if err := tx.importEdge(8, 4, 99, "E", nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("edge to a missing node: %v", err)
		}
		id, err := tx.CreateNode("B", nil)
		if err != nil || id != 11 {
			t.Errorf("next node id %d, %v", id, err)
		}
		return tx.reserveIDs(50, 3) // raises nodes, leaves edges (8) alone
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *Tx) error {
		n, err := tx.CreateNode("C", nil)
		if err != nil || n != 50 {
			t.Errorf("node after ReserveIDs: %d %v", n, err)
		}
		e, err := tx.CreateEdge(10, 4, "E", nil)
		if err != nil || e != 8 {
			t.Errorf("edge after ReserveIDs: %d %v", e, err)
		}
		if tx.NodeCount() != 4 || tx.EdgeCount() != 2 {
			t.Errorf("counts %d %d", tx.NodeCount(), tx.EdgeCount())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := db.Neighbors(10); err != nil || len(n) != 2 {
		t.Errorf("neighbors %v %v", n, err)
	}
}
