package btree

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/sombradb/sombra/engine/internal/page"
)

// gallop finds the boundary of any monotone predicate from any start.
func TestGallop(t *testing.T) {
	for n := 0; n < 40; n++ {
		for ans := 0; ans <= n; ans++ {
			for g := -1; g <= n; g++ {
				probes := 0
				got := gallop(0, n, g, func(i int) bool {
					if i < 0 || i >= n {
						t.Fatalf("probe %d outside [0,%d)", i, n)
					}
					probes++
					return i < ans
				})
				if got != ans {
					t.Fatalf("n=%d ans=%d g=%d: got %d", n, ans, g, got)
				}
				if g == ans && g < n && probes > 3 {
					t.Fatalf("n=%d: a right guess took %d probes", n, probes)
				}
			}
		}
	}
}

// searchIn and childIndexIn agree with search and childIndex whatever the
// bounds say: right ones, wrong ones, or none, for dense, sparse and
// variable-length keys.
func TestInterpolatedSearchAgrees(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	keysets := map[string]func(i int) []byte{
		"dense":  func(i int) []byte { return key(uint64(1000 + i)) },
		"sparse": func(i int) []byte { return key(uint64(i)*uint64(i)*7919 + 3) },
		"adj": func(i int) []byte {
			k := append([]byte{'o'}, key(uint64(500+i/5))...)
			return append(k, key(uint64(rng.IntN(1<<20)))...)
		},
		"strings": func(i int) []byte { return fmt.Appendf(nil, "label-%d\x00%d", i%3, i*13) },
	}
	for name, mk := range keysets {
		for _, leaf := range []bool{true, false} {
			b := make([]byte, 4096)
			typ := page.TypeBranch
			if leaf {
				typ = page.TypeLeaf
			}
			n := initNode(b, typ)
			var keys [][]byte
			for i := 0; ; i++ {
				k := mk(i)
				var c []byte
				if leaf {
					c = leafCell(k, []byte{1}, 0, 0)
				} else {
					c = branchCell(k, 7)
				}
				if !n.fits(len(c)) {
					break
				}
				idx, eq := n.search(k)
				if eq {
					continue
				}
				n.insertCell(idx, c)
				keys = append(keys, k)
			}
			sorted := make([][]byte, n.count())
			for i := range sorted {
				sorted[i] = n.key(i)
			}
			lowest, highest := sorted[0], sorted[len(sorted)-1]
			boundSets := []bounds{
				{},
				{low: lowest, high: append(bytes.Clone(highest), 0xff)},
				{low: key(0), high: key(1 << 62)},
				{low: highest, high: append(bytes.Clone(highest), 1)}, // wrong
				{low: []byte("a"), high: []byte("b")},                 // unrelated
			}
			for probe := 0; probe < 2000; probe++ {
				var k []byte
				switch probe % 3 {
				case 0:
					k = keys[rng.IntN(len(keys))]
				case 1:
					k = mk(rng.IntN(3 * len(keys)))
				default:
					k = binary.BigEndian.AppendUint64(nil, rng.Uint64())[:1+rng.IntN(8)]
				}
				for _, bd := range boundSets {
					if leaf {
						wi, we := n.search(k)
						gi, ge := n.searchIn(k, bd)
						if wi != gi || we != ge {
							t.Fatalf("%s leaf, key %x, bounds %x..%x: searchIn=(%d,%v), search=(%d,%v)", name, k, bd.low, bd.high, gi, ge, wi, we)
						}
					} else if w, g := n.childIndex(k), n.childIndexIn(k, bd); w != g {
						t.Fatalf("%s branch, key %x, bounds %x..%x: childIndexIn=%d, childIndex=%d", name, k, bd.low, bd.high, g, w)
					}
				}
			}
		}
	}
}
