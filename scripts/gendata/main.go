// Command gendata writes a deterministic, realistic sample graph into a
// Sombra database: power-law degrees, several labels, mixed property types.
//
//	go run ./scripts/gendata -nodes 50000 -edges 200000 -seed 1 -out demo/graph.db
package main

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/internal/gengraph"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gendata:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("gendata", flag.ContinueOnError)
	nodes := fs.Int("nodes", 10000, "number of nodes")
	edges := fs.Int("edges", 40000, "number of edges")
	labels := fs.String("labels", strings.Join(gengraph.DefaultLabels, ","), "comma-separated node labels")
	seed := fs.Int64("seed", 1, "random seed (same seed, same graph)")
	out := fs.String("out", "", "database file to create (must not exist)")
	batch := fs.Int("batch", 50000, "elements per transaction")
	index := fs.String("index", "email", "comma-separated properties to index (empty: none)")
	deletePct := fs.Int("delete-pct", 0, "after loading, delete this percentage of nodes (with their edges), leaving the deletes in the WAL: a database that needs a checkpoint and compaction")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the load to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *out == "" {
		return errors.New("-out is required")
	}
	start := time.Now()
	db, err := engine.Create(*out)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, p := range strings.Split(*index, ",") {
		if p = strings.TrimSpace(p); p != "" {
			if err := db.CreatePropertyIndex(p); err != nil {
				return err
			}
		}
	}
	l := &loader{db: db, batch: *batch}
	spec := gengraph.Spec{Nodes: *nodes, Edges: *edges, Labels: strings.Split(*labels, ","), Seed: *seed}
	err = gengraph.Generate(spec, func(i int, n gengraph.Node) error {
		tx, err := l.tx()
		if err != nil {
			return err
		}
		id, err := tx.CreateNode(n.Label, gengraph.EngineProps(n.Props))
		if err == nil && id != engine.NodeID(i+1) {
			err = fmt.Errorf("node %d got id %d: generate into a new database", i, id)
		}
		return err
	}, func(e gengraph.Edge) error {
		tx, err := l.tx()
		if err != nil {
			return err
		}
		_, err = tx.CreateEdge(engine.NodeID(e.From+1), engine.NodeID(e.To+1), e.Label, gengraph.EngineProps(e.Props))
		return err
	})
	if err != nil {
		l.abort()
		return err
	}
	if err := l.commit(); err != nil {
		return err
	}
	if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		return err
	}
	if *deletePct > 0 {
		if err := churn(db, *nodes, *deletePct, *seed); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "gendata: %d nodes, %d edges into %s in %s\n", *nodes, *edges, *out, time.Since(start).Round(time.Millisecond))
	return nil
}

// churn deletes pct% of the nodes, chosen deterministically from seed.
func churn(db *engine.DB, nodes, pct int, seed int64) error {
	r := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	return db.Update(func(tx *engine.Tx) error {
		for id := 1; id <= nodes; id++ {
			if r.IntN(100) < pct {
				if err := tx.DeleteNode(engine.NodeID(id)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// loader groups inserts into transactions of batch elements.
type loader struct {
	db    *engine.DB
	cur   *engine.Tx
	n     int
	batch int
}

func (l *loader) tx() (*engine.Tx, error) {
	if l.cur != nil && l.n >= l.batch {
		if err := l.commit(); err != nil {
			return nil, err
		}
	}
	if l.cur == nil {
		tx, err := l.db.BeginTransaction()
		if err != nil {
			return nil, err
		}
		l.cur, l.n = tx, 0
	}
	l.n++
	return l.cur, nil
}

func (l *loader) commit() error {
	if l.cur == nil {
		return nil
	}
	err := l.cur.Commit()
	l.cur = nil
	return err
}

func (l *loader) abort() {
	if l.cur != nil {
		l.cur.Rollback()
		l.cur = nil
	}
}
