// Package gengraph generates deterministic, realistic-looking property graphs
// for tests and benchmarks.
//
// Graphs are streamed: Generate calls emitNode once per node, in index order,
// and then emitEdge once per edge. Edges are never held in memory, so graphs
// with millions of edges can be produced in bounded memory (the generator
// itself keeps O(Nodes) state: two permutations of 4 bytes per node).
//
// The shape is meant to resemble social or content graphs:
//
//   - out- and in-degrees follow a power law: edge endpoints are drawn from a
//     Zipf distribution over node ranks, and ranks are mapped to node indices
//     through two independent random permutations, so hubs are scattered over
//     the index space and the biggest senders are not the biggest receivers;
//   - node and edge labels have skewed (Zipf-like) frequencies;
//   - node properties mix strings, ints, floats, bools, occasional byte
//     blobs and a nullable field.
//
// The same Spec (including Seed) always produces the same stream.
package gengraph

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Spec describes the graph to generate.
type Spec struct {
	Nodes, Edges int
	// Labels are the node labels; nil or empty means DefaultLabels. Earlier
	// labels are more frequent.
	Labels []string
	// EdgeLabels are the edge labels; nil or empty means DefaultEdgeLabels.
	// Earlier labels are more frequent.
	EdgeLabels []string
	Seed       int64
}

// Node is one generated node. Its index (the i passed to emitNode) is its
// identity: edges refer to nodes by index.
type Node struct {
	Label string
	Props map[string]Value
}

// Edge is one generated edge between two node indices (0-based). Props may
// be nil when the edge has no properties. Edges may repeat (multi-graph) but
// are never self-loops unless the graph has a single node.
type Edge struct {
	From, To int
	Label    string
	Props    map[string]Value
}

// DefaultLabels are used when Spec.Labels is empty.
var DefaultLabels = []string{"Person", "Post", "Comment", "Company", "City", "Tag"}

// DefaultEdgeLabels are used when Spec.EdgeLabels is empty.
var DefaultEdgeLabels = []string{"KNOWS", "LIKES", "FOLLOWS", "REPLY_OF", "WORKS_AT", "LIVES_IN"}

// Node property keys. Every node has all of them except PropAvatar, which is
// present on about 5% of nodes. PropNickname is null on about 40% of nodes.
const (
	PropName     = "name"     // string
	PropEmail    = "email"    // string, unique per node index
	PropAge      = "age"      // int
	PropScore    = "score"    // float
	PropActive   = "active"   // bool
	PropCreated  = "created"  // int, unix seconds, roughly increasing with index
	PropNickname = "nickname" // string or null
	PropAvatar   = "avatar"   // bytes, occasional

	EdgePropSince  = "since"  // int, unix seconds
	EdgePropWeight = "weight" // float
)

const (
	// degreeExponent is the Zipf exponent s of endpoint ranks: P(rank k) is
	// proportional to (v+k)^-s.
	degreeExponent = 1.1
	// headFlatten sets v = max(1, Nodes/headFlatten). Without it the single
	// top-ranked node would receive ~10% of all edges; with it the top 1% of
	// nodes take roughly 40% of the edge endpoints on each side and the
	// largest degree is a few hundred times the mean.
	headFlatten = 1000
	// labelExponent skews label frequencies: weight(k) = 1/(k+1)^labelExponent.
	labelExponent = 1.3

	avatarRate     = 0.05
	nullNickRate   = 0.40
	edgePropsRate  = 0.70
	createdBase    = 1420070400 // 2015-01-01T00:00:00Z
	createdSpan    = 10 * 365 * 86400
	maxNodes       = math.MaxUint32
	streamNodes    = 0x6e6f646573 // "nodes"
	streamEdges    = 0x6564676573 // "edges"
	streamShuffles = 0x7065726d   // "perm"
)

// Validate reports whether the spec can be generated.
func (s Spec) Validate() error {
	switch {
	case s.Nodes < 0 || s.Edges < 0:
		return fmt.Errorf("gengraph: negative count (nodes=%d edges=%d)", s.Nodes, s.Edges)
	case s.Edges > 0 && s.Nodes == 0:
		return errors.New("gengraph: edges requested on a graph with no nodes")
	case uint64(s.Nodes) > maxNodes:
		return fmt.Errorf("gengraph: too many nodes (%d > %d)", s.Nodes, uint64(maxNodes))
	}
	return nil
}

// Generate streams the graph described by spec: emitNode for each node in
// index order 0..Nodes-1, then emitEdge for each edge. Either callback may be
// nil. The first error returned by a callback stops generation and is
// returned as is. Callbacks may retain the Node, Edge and their Props maps:
// every call gets freshly allocated values.
func Generate(spec Spec, emitNode func(i int, n Node) error, emitEdge func(e Edge) error) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	labels := spec.Labels
	if len(labels) == 0 {
		labels = DefaultLabels
	}
	edgeLabels := spec.EdgeLabels
	if len(edgeLabels) == 0 {
		edgeLabels = DefaultEdgeLabels
	}
	seed := uint64(spec.Seed)

	if emitNode != nil {
		r := rand.New(rand.NewPCG(seed, streamNodes))
		pick := newWeighted(len(labels))
		for i := 0; i < spec.Nodes; i++ {
			n := Node{Label: labels[pick.sample(r)], Props: nodeProps(r, i, spec.Nodes)}
			if err := emitNode(i, n); err != nil {
				return err
			}
		}
	}
	if emitEdge == nil || spec.Edges == 0 {
		return nil
	}

	n := spec.Nodes
	pr := rand.New(rand.NewPCG(seed, streamShuffles))
	outPerm := permutation(pr, n)
	inPerm := permutation(pr, n)

	r := rand.New(rand.NewPCG(seed, streamEdges))
	v := float64(max(1, n/headFlatten))
	outZ := rand.NewZipf(r, degreeExponent, v, uint64(n-1))
	inZ := rand.NewZipf(r, degreeExponent, v, uint64(n-1))
	pick := newWeighted(len(edgeLabels))
	for k := 0; k < spec.Edges; k++ {
		from := int(outPerm[outZ.Uint64()])
		to := int(inPerm[inZ.Uint64()])
		if from == to && n > 1 {
			// Redirect self-loops to a uniformly chosen other node.
			to = (to + 1 + r.IntN(n-1)) % n
		}
		e := Edge{From: from, To: to, Label: edgeLabels[pick.sample(r)]}
		if r.Float64() < edgePropsRate {
			e.Props = map[string]Value{
				EdgePropSince:  Int(createdBase + r.Int64N(createdSpan)),
				EdgePropWeight: Float(math.Round(r.Float64()*1000) / 1000),
			}
		}
		if err := emitEdge(e); err != nil {
			return err
		}
	}
	return nil
}

// permutation returns a random permutation of 0..n-1.
func permutation(r *rand.Rand, n int) []uint32 {
	p := make([]uint32, n)
	for i := range p {
		p[i] = uint32(i)
	}
	r.Shuffle(n, func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}

// weighted samples indices 0..n-1 with weight 1/(k+1)^labelExponent.
type weighted struct{ cum []float64 }

func newWeighted(n int) weighted {
	cum := make([]float64, n)
	total := 0.0
	for k := range cum {
		total += 1 / math.Pow(float64(k+1), labelExponent)
		cum[k] = total
	}
	for k := range cum {
		cum[k] /= total
	}
	return weighted{cum}
}

func (w weighted) sample(r *rand.Rand) int {
	x := r.Float64()
	for k, c := range w.cum {
		if x < c {
			return k
		}
	}
	return len(w.cum) - 1
}

var firstNames = []string{
	"Ada", "Alan", "Alice", "Amara", "Ana", "Anders", "Aoife", "Arjun", "Bea", "Bob",
	"Carlos", "Chen", "Chloe", "Dara", "David", "Elena", "Emeka", "Eva", "Farah", "Finn",
	"Grace", "Hana", "Hugo", "Ines", "Ivan", "Jamal", "Jin", "Julia", "Kai", "Kenji",
	"Lara", "Leo", "Lina", "Luca", "Maya", "Mei", "Mohammed", "Nia", "Noah", "Olga",
	"Omar", "Priya", "Rafael", "Rosa", "Sam", "Sara", "Tariq", "Uma", "Yara", "Zoe",
}

var lastNames = []string{
	"Abara", "Andersen", "Bauer", "Bianchi", "Chen", "Costa", "Dubois", "Eriksson", "Fernandez", "Fischer",
	"Garcia", "Haddad", "Ivanova", "Jensen", "Kim", "Kowalski", "Larsen", "Lopez", "Martin", "Meyer",
	"Moreau", "Nakamura", "Novak", "Okafor", "Olsen", "Patel", "Perez", "Rossi", "Santos", "Schmidt",
	"Silva", "Singh", "Smith", "Sato", "Tanaka", "Virtanen", "Wang", "Weber", "Yilmaz", "Zhang",
}

var domains = []string{"example.com", "example.org", "mail.example", "corp.example", "test.example"}

var nickSyllables = []string{"ka", "zu", "mi", "ro", "tel", "vin", "so", "ra", "xo", "li", "dan", "bo"}

func nodeProps(r *rand.Rand, i, n int) map[string]Value {
	first := firstNames[r.IntN(len(firstNames))]
	last := lastNames[r.IntN(len(lastNames))]

	var email strings.Builder
	email.Grow(len(first) + len(last) + 24)
	email.WriteString(strings.ToLower(first))
	email.WriteByte('.')
	email.WriteString(strings.ToLower(last))
	email.WriteString(strconv.Itoa(i))
	email.WriteByte('@')
	email.WriteString(domains[r.IntN(len(domains))])

	age := int64(math.Round(35 + 12*r.NormFloat64()))
	age = min(max(age, 13), 99)

	created := int64(createdBase) + int64(float64(i)/float64(max(n, 1))*createdSpan) + r.Int64N(86400)

	p := make(map[string]Value, 8)
	p[PropName] = String(first + " " + last)
	p[PropEmail] = String(email.String())
	p[PropAge] = Int(age)
	p[PropScore] = Float(math.Round(r.ExpFloat64()*1e4) / 1e3)
	p[PropActive] = Bool(r.Float64() < 0.8)
	p[PropCreated] = Int(created)
	if r.Float64() < nullNickRate {
		p[PropNickname] = Null()
	} else {
		var nick strings.Builder
		for range 2 + r.IntN(3) {
			nick.WriteString(nickSyllables[r.IntN(len(nickSyllables))])
		}
		p[PropNickname] = String(nick.String())
	}
	if r.Float64() < avatarRate {
		b := make([]byte, 64+r.IntN(448))
		for j := 0; j < len(b); j += 8 {
			x := r.Uint64()
			for k := j; k < j+8 && k < len(b); k++ {
				b[k] = byte(x)
				x >>= 8
			}
		}
		p[PropAvatar] = Bytes(b)
	}
	return p
}
