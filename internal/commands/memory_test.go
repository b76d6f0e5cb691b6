package commands_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/internal/gengraph"
)

// TestStreamingMemoryBound runs each whole-file operation of the tools as
// a child process with a 1 MiB page cache (SOMBRA_CACHE_SIZE) on a
// database of about 30 MB and checks its peak RSS (ru_maxrss) against the
// RSS of a tool that does nothing (sombra-info --version) plus the cache
// plus a fixed headroom. The file is several times the headroom, so an
// operation whose memory grows with the data (as the integrity check's
// maps did, about twice the file) fails. Salvage (sombra-repair
// --salvage-to) still holds every record in memory and is not listed.
func TestStreamingMemoryBound(t *testing.T) {
	bin := binaries(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "g.db")
	// The graph is generated in a child process: a child's ru_maxrss
	// starts from its parent's peak (the child shares the parent's memory
	// until it execs), so this process must stay small.
	gen := exec.Command(os.Args[0])
	gen.Env = append(os.Environ(), genGraphEnv+"="+db)
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("generate: %v\n%s", err, out)
	}
	st, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	const cache = 1 << 20
	const headroom = 24 << 20
	env := []string{engine.CacheSizeEnv + "=1M", "NO_COLOR=1"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMEMLIMIT=") && !strings.HasPrefix(kv, "GOGC=") && !strings.HasPrefix(kv, engine.CacheSizeEnv+"=") {
			env = append(env, kv)
		}
	}
	peak := func(args ...string) int64 {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, args[0]), args[1:]...)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
	}
	base := peak("sombra-info", "--version")
	limit := base + cache + headroom
	t.Logf("database %.1f MiB, cache 1 MiB; baseline RSS %.1f MiB, limit %.1f MiB", mibf(st.Size()), mibf(base), mibf(limit))
	bk := filepath.Join(dir, "bk")
	for _, op := range [][]string{
		{"sombra-backup", "--type", "full", "--db", db, "--output", filepath.Join(bk, "full")},
		{"sombra-backup", "--type", "incremental", "--db", db, "--output", filepath.Join(bk, "inc")},
		{"sombra-backup", "verify", filepath.Join(bk, "inc.backup")},
		{"sombra-health-check", "--db", db, "--deep"},
		{"sombra-repair", "--db", db},
		{"sombra-compact", "--db", db, "--analyze"},
		{"sombra-compact", "--db", db},
	} {
		rss := peak(op...)
		t.Logf("%-30s peak RSS %6.1f MiB", strings.Join(op[:min(3, len(op))], " "), mibf(rss))
		if rss > limit {
			t.Errorf("%s: peak RSS %.1f MiB, above %.1f MiB (baseline + cache + %d MiB) on a %.1f MiB file",
				strings.Join(op, " "), mibf(rss), mibf(limit), headroom>>20, mibf(st.Size()))
		}
	}
}

func mibf(b int64) float64 { return float64(b) / (1 << 20) }

// genGraphEnv names the database a generator child writes.
const genGraphEnv = "SOMBRA_TEST_GENGRAPH"

// genGraphChild writes gendata's graph of 30,000 nodes and 150,000 edges
// (email indexed) into a new database at path, checkpointed, and returns
// the exit status.
func genGraphChild(path string) int {
	if err := genGraph(path, gengraph.Spec{Nodes: 30000, Edges: 150000, Seed: 3}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func genGraph(path string, spec gengraph.Spec) error {
	db, err := engine.Create(path)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.CreatePropertyIndex("email"); err != nil {
		return err
	}
	var tx *engine.Tx
	n := 0
	step := func() (*engine.Tx, error) {
		if tx != nil && n%20000 == 0 {
			if err := tx.Commit(); err != nil {
				return nil, err
			}
			tx = nil
		}
		n++
		if tx == nil {
			var err error
			if tx, err = db.BeginTransaction(); err != nil {
				return nil, err
			}
		}
		return tx, nil
	}
	err = gengraph.Generate(spec, func(i int, nd gengraph.Node) error {
		tx, err := step()
		if err != nil {
			return err
		}
		_, err = tx.CreateNode(nd.Label, gengraph.EngineProps(nd.Props))
		return err
	}, func(e gengraph.Edge) error {
		tx, err := step()
		if err != nil {
			return err
		}
		_, err = tx.CreateEdge(engine.NodeID(e.From+1), engine.NodeID(e.To+1), e.Label, gengraph.EngineProps(e.Props))
		return err
	})
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	_, err = db.CheckpointWithMode(engine.CheckpointTruncate)
	return err
}
