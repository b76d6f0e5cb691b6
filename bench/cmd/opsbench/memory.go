package main

import (
	"flag"
	"fmt"
	"github.com/sombradb/sombra/engine"
	"os"
	"path/filepath"
	"strings"
)

// cmdMemory runs each whole-file operation of the tools as a child process
// with the page cache set by SOMBRA_CACHE_SIZE and prints its peak RSS
// (ru_maxrss) against the target of the cache size + 96 MiB: backup (full,
// incremental, verify), the integrity check (health-check --deep, repair),
// compaction (--analyze and the rewrite), and salvage with -salvage.
// The database is copied into WORK first; compaction runs on the copy.
func cmdMemory(args []string) error {
	fs := flag.NewFlagSet("memory", flag.ExitOnError)
	bin := fs.String("bin", "", "directory with the sombra-* binaries")
	db := fs.String("db", "", "database (a few hundred MB or more, checkpointed)")
	work := fs.String("work", "", "scratch directory (gets a copy of the database and its backups)")
	cache := fs.String("cache", "32M", "page cache (SOMBRA_CACHE_SIZE: bytes with an optional K, M or G suffix)")
	salvage := fs.Bool("salvage", false, "also run sombra-repair --salvage-to (slow)")
	fs.Parse(args)
	if *bin == "" || *db == "" {
		return fmt.Errorf("-bin and -db are required")
	}
	if err := mustDir(*work); err != nil {
		return err
	}
	cacheBytes, err := parseSize(*cache)
	if err != nil {
		return err
	}
	if err := os.Setenv("SOMBRA_CACHE_SIZE", *cache); err != nil {
		return err
	}
	os.Unsetenv("GOMEMLIMIT")
	cp := filepath.Join(*work, "memory.db")
	if _, err := runCmd([]string{"cp", *db, cp}); err != nil {
		return err
	}
	defer os.Remove(cp)
	bk := filepath.Join(*work, "memory-backups")
	os.RemoveAll(bk)
	defer os.RemoveAll(bk)
	target := cacheBytes + 96<<20
	logf("# opsbench memory: %s (%s), SOMBRA_CACHE_SIZE=%s, target peak RSS <= %s", *db, mib(fileSize(cp)), *cache, mib(target))
	ops := [][]string{
		{tool(*bin, "sombra-info"), "--version"},
		{tool(*bin, "sombra-backup"), "--type", "full", "--db", cp, "--output", filepath.Join(bk, "full"), "--json"},
		{tool(*bin, "sombra-backup"), "--type", "incremental", "--db", cp, "--output", filepath.Join(bk, "inc"), "--json"},
		{tool(*bin, "sombra-backup"), "verify", filepath.Join(bk, "inc.backup"), "--json"},
		{tool(*bin, "sombra-health-check"), "--db", cp, "--deep"},
		{tool(*bin, "sombra-repair"), "--db", cp},
		{tool(*bin, "sombra-compact"), "--db", cp, "--analyze"},
		{tool(*bin, "sombra-compact"), "--db", cp},
	}
	if *salvage {
		ops = append(ops, []string{tool(*bin, "sombra-repair"), "--db", cp, "--salvage-to", filepath.Join(*work, "memory-salvaged.db")})
		defer os.Remove(filepath.Join(*work, "memory-salvaged.db"))
	}
	logf("%-50s %10s %12s  %s", "operation", "wall", "peak RSS", "target")
	for _, argv := range ops {
		r, err := runCmd(argv, 1, 2)
		if err != nil {
			return err
		}
		name := filepath.Base(argv[0]) + " " + strings.Join(argv[1:min(3, len(argv))], " ")
		rss := r.maxRSSKiB << 10
		verdict := metNot(rss <= target)
		if strings.HasSuffix(name, "--version") {
			verdict = "(process floor)"
		}
		logf("%-50s %10s %12s  %s", name, ms(r.wall), mib(rss), verdict)
	}
	return nil
}

// parseSize parses a cache size the way the tools read SOMBRA_CACHE_SIZE.
func parseSize(s string) (int64, error) { return engine.ParseCacheSize(s) }
