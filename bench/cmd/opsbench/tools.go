package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sombradb/sombra/bench"
	"github.com/sombradb/sombra/internal/gengraph"
)

// cmdSQLiteLoad builds the SQLite copy of a gendata graph with the bench
// SQLite store (nodes/edges tables, indexes on edges(src), edges(dst),
// nodes(label), WAL mode, checkpointed at the end). The file is
// DIR/graph.sqlite.
func cmdSQLiteLoad(args []string) error {
	fs := flag.NewFlagSet("sqlite-load", flag.ExitOnError)
	nodes := fs.Int("nodes", 10000, "nodes (as gendata -nodes)")
	edges := fs.Int("edges", 40000, "edges (as gendata -edges)")
	seed := fs.Int64("seed", 1, "generator seed (as gendata -seed)")
	out := fs.String("out", "", "directory to create the database in (DIR/graph.sqlite)")
	fs.Parse(args)
	if *out == "" {
		return fmt.Errorf("-out is required")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if fileSize(filepath.Join(*out, "graph.sqlite")) > 0 {
		return fmt.Errorf("%s/graph.sqlite exists", *out)
	}
	s, err := bench.Open("sqlite", *out, bench.DefaultOptions())
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := s.BulkLoad(bench.SpecSource(gengraph.Spec{Nodes: *nodes, Edges: *edges, Seed: *seed})); err != nil {
		s.Close()
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	p := filepath.Join(*out, "graph.sqlite")
	logf("sqlite-load: %d nodes, %d edges into %s (%s) in %s", *nodes, *edges, p, mib(fileSize(p)), time.Since(t0).Round(time.Millisecond))
	return nil
}

// cmdTools times sombra-info and sombra-health-check on one database, warm
// (file in the page cache) and cold (the database file's pages evicted with
// POSIX_FADV_DONTNEED before each run). Target: < 200 ms each.
func cmdTools(args []string) error {
	fs := flag.NewFlagSet("tools", flag.ExitOnError)
	bin := fs.String("bin", "", "directory with the sombra-* binaries")
	db := fs.String("db", "", "database (about 1 GiB)")
	runs := fs.Int("runs", 10, "warm runs per command (after one untimed run)")
	cold := fs.Int("cold-runs", 5, "cold-cache runs per command")
	deep := fs.Bool("deep", true, "also time one sombra-health-check --deep (reference: the full scan)")
	fs.Parse(args)
	if *bin == "" || *db == "" {
		return fmt.Errorf("-bin and -db are required")
	}
	logf("# opsbench tools: %s (%s, WAL %d bytes)", *db, mib(fileSize(*db)), walSize(*db))
	target := 200 * time.Millisecond
	series := [][]string{
		{tool(*bin, "sombra-info"), "--version"}, // process start floor
		{tool(*bin, "sombra-info"), "--db", *db},
		{tool(*bin, "sombra-info"), "--db", *db, "--json"},
		{tool(*bin, "sombra-info"), "--db", *db, "--fragmentation"},
		{tool(*bin, "sombra-info"), "--db", *db, "--indexes"},
		{tool(*bin, "sombra-health-check"), "--db", *db},
		{tool(*bin, "sombra-health-check"), "--db", *db, "--json"},
	}
	type row struct {
		name       string
		warm, cold stats
		rss        int64
	}
	var rows []row
	for _, argv := range series {
		header(filepath.Base(argv[0])+" "+fmt.Sprint(argv[1:]), argv)
		if _, err := runCmd(argv, 1, 2); err != nil { // warm-up; health: 1 degraded, 2 unhealthy
			return err
		}
		var warm, coldRuns []time.Duration
		var rss int64
		var last run
		for range *runs {
			r, err := runCmd(argv, 1, 2)
			if err != nil {
				return err
			}
			warm = append(warm, r.wall)
			rss = max(rss, r.maxRSSKiB)
			last = r
		}
		for range *cold {
			if err := dropFileCache(*db, *db+"-wal"); err != nil {
				return err
			}
			r, err := runCmd(argv, 1, 2)
			if err != nil {
				return err
			}
			coldRuns = append(coldRuns, r.wall)
		}
		ws, cs := summarize(warm), summarize(coldRuns)
		logf("warm: %s", ws)
		logf("cold: %s", cs)
		logf("peak RSS %s, exit %d, output %d bytes: %s", mib(rss*1024), last.exit, len(last.stdout), truncate(firstLines(string(last.stdout), 3), 300))
		rows = append(rows, row{name: shellJoin(append([]string{filepath.Base(argv[0])}, argv[1:]...)), warm: ws, cold: cs, rss: rss})
	}
	if *deep {
		argv := []string{tool(*bin, "sombra-health-check"), "--db", *db, "--deep"}
		header("reference: full scan", argv)
		r, err := runCmd(argv, 1, 2)
		if err != nil {
			return err
		}
		logf("one run (warm): %s, exit %d", ms(r.wall), r.exit)
	}
	logf("\n## summary (target < %s)   [load %s]", ms(target), loadavg())
	logf("%-70s %12s %12s  %s", "command", "warm median", "cold median", "target")
	for _, r := range rows {
		verdict := metNot(r.warm.median < target && r.cold.median < target)
		if strings.HasSuffix(r.name, "--version") {
			verdict = "(process start floor)"
		}
		logf("%-70s %12s %12s  %s", r.name, ms(r.warm.median), ms(r.cold.median), verdict)
	}
	return nil
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], " | ")
}
