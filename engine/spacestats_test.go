package engine

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

// The space statistics kept at every commit equal what reading every page
// finds, after random churn: inserts and deletes of small and overflowing
// records, property updates that grow records, edges, rollbacks, and a
// reopen and checkpoint in the middle.
func TestSpaceStatsMatchAScan(t *testing.T) {
	t.Run("default cache", func(t *testing.T) { spaceStatsMatchAScan(t, Config{}) })
	// A tiny cache makes every round spill dirty pages to the WAL before
	// commit: their images are then read back from the log for the count.
	t.Run("spilling", func(t *testing.T) { spaceStatsMatchAScan(t, Config{CacheSize: tinyCache, WALAutoCheckpoint: -1}) })
}

func spaceStatsMatchAScan(t *testing.T, cfg Config) {
	path := tempDB(t)
	db := mustOpen(t, path, cfg)
	rng := rand.New(rand.NewSource(7))
	var live []NodeID
	check := func(when string) {
		t.Helper()
		err := db.View(func(tx *Tx) error {
			kept := tx.meta.Stats
			if !kept.Valid {
				return fmt.Errorf("no statistics kept")
			}
			m := *tx.meta
			m.Stats.Valid = false
			tx.meta = &m
			scanned, err := tx.spaceStats()
			if err != nil {
				return err
			}
			if scanned != kept {
				return fmt.Errorf("kept %+v, scanned %+v", kept, scanned)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
	}
	for round := 0; round < 40; round++ {
		err := db.Update(func(tx *Tx) error {
			for i := 0; i < 200; i++ {
				switch op := rng.Intn(10); {
				case op < 5 || len(live) < 10:
					size := 10 + rng.Intn(200)
					if rng.Intn(20) == 0 {
						size = 5000 + rng.Intn(20000) // overflow pages
					}
					id, err := tx.CreateNode("N", Properties{"s": StringValue(strings.Repeat("x", size))})
					if err != nil {
						return err
					}
					if len(live) > 0 && rng.Intn(2) == 0 {
						if _, err := tx.CreateEdge(id, live[rng.Intn(len(live))], "E", nil); err != nil {
							return err
						}
					}
					live = append(live, id)
				case op < 8:
					j := rng.Intn(len(live))
					if err := tx.DeleteNode(live[j]); err != nil {
						return err
					}
					live[j] = live[len(live)-1]
					live = live[:len(live)-1]
				default:
					id := live[rng.Intn(len(live))]
					if err := tx.SetNodeProperty(id, "t", StringValue(strings.Repeat("y", rng.Intn(3000)))); err != nil {
						return err
					}
				}
			}
			if round%7 == 3 {
				return fmt.Errorf("roll back")
			}
			return nil
		})
		if err != nil && err.Error() != "roll back" {
			t.Fatal(err)
		}
		if round%7 == 3 {
			live = nil // the ids of the rolled-back round are gone; rebuild below
			_ = db.View(func(tx *Tx) error {
				ids, err := tx.NodesInRange(0, NodeID(^uint64(0)>>1))
				live = ids
				return err
			})
		}
		check(fmt.Sprintf("round %d", round))
		if round == 20 {
			if _, err := db.CheckpointWithMode(CheckpointTruncate); err != nil {
				t.Fatal(err)
			}
			db.Close()
			db = mustOpen(t, path, cfg)
		}
	}
	db.Close()
}
