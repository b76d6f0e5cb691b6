package engine_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/sombradb/sombra/engine"
)

func Example() {
	dir, _ := os.MkdirTemp("", "sombra-example")
	defer os.RemoveAll(dir)
	db, err := engine.Open(filepath.Join(dir, "graph.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	var alice engine.NodeID
	err = db.Update(func(tx *engine.Tx) error {
		alice, err = tx.CreateNode("User", engine.Properties{"name": engine.StringValue("alice")})
		if err != nil {
			return err
		}
		bob, err := tx.CreateNode("User", engine.Properties{"name": engine.StringValue("bob")})
		if err != nil {
			return err
		}
		_, err = tx.CreateEdge(alice, bob, "FOLLOWS", nil)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := db.SetNodeProperty(alice, "status", engine.StringValue("active")); err != nil {
		log.Fatal(err)
	}

	err = db.View(func(tx *engine.Tx) error {
		n, err := tx.GetNode(alice)
		if err != nil {
			return err
		}
		follows, err := tx.Neighbors(alice)
		if err != nil {
			return err
		}
		bob, err := tx.GetNode(follows[0])
		if err != nil {
			return err
		}
		fmt.Println(n.Label(), n.Properties["name"], n.Properties["status"], "follows", bob.Properties["name"])
		ids, err := tx.NodesInRange(1, 10)
		fmt.Println("ids in [1, 10]:", ids)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// User "alice" "active" follows "bob"
	// ids in [1, 10]: [1 2]
}
