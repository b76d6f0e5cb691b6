// Package bench runs the same graph workload against several storage
// engines: SQLite (via mattn/go-sqlite3), bbolt and, when built with the
// "sombra" tag, Sombra's own engine.
//
// Every engine implements Store. Node ids are 1-based and follow gengraph's
// node index: node i of the generated stream has id i+1 in every engine.
// Edge ids are likewise 1-based in stream order.
package bench

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/sombradb/sombra/internal/gengraph"
)

// Source streams a graph into a store: it calls emitNode for every node in
// index order and then emitEdge for every edge.
type Source func(emitNode func(i int, n gengraph.Node) error, emitEdge func(e gengraph.Edge) error) error

// SpecSource returns a Source generating spec with gengraph.
func SpecSource(spec gengraph.Spec) Source {
	return func(emitNode func(int, gengraph.Node) error, emitEdge func(gengraph.Edge) error) error {
		return gengraph.Generate(spec, emitNode, emitEdge)
	}
}

// ErrUnsupported is returned by a store for a workload it does not implement.
var ErrUnsupported = errors.New("workload not supported by this store")

// Store is one engine under test. Methods other than GroupCommitOne are
// called from a single goroutine.
type Store interface {
	// BulkLoad loads a whole generated graph into an empty store.
	BulkLoad(src Source) error
	// GetNode reads node id with its label and decoded properties and
	// reports whether it exists.
	GetNode(id int64) (bool, error)
	// RangeScan returns the number of node ids in [lo, hi] (both
	// inclusive), visiting them in ascending order.
	RangeScan(lo, hi int64) (int, error)
	// FullIterate visits every node id in ascending order and returns the count.
	FullIterate() (int, error)
	// Neighbors1Hop returns the number of outgoing neighbours of id,
	// counted with multiplicity (one per outgoing edge).
	Neighbors1Hop(id int64) (int, error)
	// Neighbors2Hop returns the number of distinct nodes reachable from id
	// by exactly two outgoing hops.
	Neighbors2Hop(id int64) (int, error)
	// DurableSingleCommit inserts one new node in its own transaction and
	// returns once the commit is durable.
	DurableSingleCommit() error
	// EnableGroupCommit prepares the store for `workers` goroutines calling
	// GroupCommitOne at once; interval is the group-commit window for
	// engines that have one.
	EnableGroupCommit(workers int, interval time.Duration) error
	// GroupCommitOne is DurableSingleCommit, safe for concurrent use.
	GroupCommitOne() error
	Close() error
}

// EmptyViewer is implemented by stores that can begin and end a read
// transaction that reads nothing: the fixed cost every read pays.
type EmptyViewer interface {
	EmptyView() error
}

// Options configures stores.
type Options struct {
	// CacheBytes is the page cache size for engines that have one
	// (SQLite, Sombra). bbolt relies on the OS page cache via mmap.
	CacheBytes int64
	// BatchSize is the number of nodes+edges per transaction during bulk
	// load for engines that batch (bbolt; Sombra when > 0). 0 means
	// each engine's default.
	BatchSize int
}

// DefaultOptions are the options used by graphbench unless overridden.
func DefaultOptions() Options {
	return Options{CacheBytes: 256 << 20}
}

// Opener opens (creating) a store in dir, which is empty or missing.
type Opener func(dir string, opt Options) (Store, error)

var (
	registry   = map[string]Opener{}
	duplicates = map[string]bool{} // names registered more than once
)

// Register makes an engine available by name. It is called from init
// functions of the store files. A name registered twice is refused by
// Open, so a copy-paste slip cannot silently benchmark the wrong engine.
func Register(name string, open Opener) {
	if _, dup := registry[name]; dup {
		duplicates[name] = true
	}
	registry[name] = open
}

// Engines returns the names of the registered engines, sorted.
func Engines() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Open opens the named engine.
func Open(name, dir string, opt Options) (Store, error) {
	open, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("engine %q not compiled in; have %v", name, Engines())
	}
	if duplicates[name] {
		return nil, fmt.Errorf("engine %q is registered by two store files", name)
	}
	return open(dir, opt)
}

// Registered reports whether name is a registered engine.
func Registered(name string) bool {
	_, ok := registry[name]
	return ok
}

// twoHop computes the distinct two-hop set given a neighbour function; it
// expands each distinct first-hop node once.
func twoHop(id int64, neighbors func(id int64, visit func(n int64)) error) (int, error) {
	var first []int64
	if err := neighbors(id, func(n int64) { first = append(first, n) }); err != nil {
		return 0, err
	}
	slices.Sort(first)
	first = slices.Compact(first)
	seen := make(map[int64]struct{}, len(first)*8)
	for _, f := range first {
		if err := neighbors(f, func(n int64) { seen[n] = struct{}{} }); err != nil {
			return 0, err
		}
	}
	return len(seen), nil
}
