package record

import (
	"bytes"
	"math"
	"testing"
)

func sampleNodes() []*Node {
	return []*Node{
		{},
		{Labels: []string{"User"}, Props: Props{"name": String("alice"), "age": Int(30)}},
		{Labels: []string{"a", "b", ""}, Props: Props{"f": Float(math.NaN()), "z": Float(math.Copysign(0, -1)), "n": Null(),
			"t": Bool(true), "b": Bytes([]byte{0, 1, 2}), "": String("")}},
		{Labels: []string{"L"}, Props: Props{"big": Int(math.MinInt64), "s": String(string(bytes.Repeat([]byte("x"), 300)))}},
	}
}

func nodesEqual(a, b *Node) bool {
	if len(a.Labels) != len(b.Labels) || !EqualProps(a.Props, b.Props) {
		return false
	}
	for i := range a.Labels {
		if a.Labels[i] != b.Labels[i] {
			return false
		}
	}
	return true
}

func edgesEqual(a, b *Edge) bool {
	return a.From == b.From && a.To == b.To && a.Label == b.Label && EqualProps(a.Props, b.Props)
}

// FuzzDecodeNode: decoding never panics; whatever decodes re-encodes to a
// canonical form that decodes to the same node, and that form is stable.
func FuzzDecodeNode(f *testing.F) {
	for _, n := range sampleNodes() {
		f.Add(EncodeNode(n))
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{1, 0, 1, 1, 'a', byte(KindFloat), 1, 2}) // truncated float (used to panic)
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{2, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := DecodeNode(b)
		if err != nil {
			if n != nil {
				t.Fatal("non-nil node with an error")
			}
			return
		}
		enc := EncodeNode(n)
		n2, err := DecodeNode(enc)
		if err != nil {
			t.Fatalf("re-encoded node does not decode: %v", err)
		}
		if !nodesEqual(n, n2) {
			t.Fatalf("round trip changed the node: %+v -> %+v", n, n2)
		}
		if enc2 := EncodeNode(n2); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not canonical")
		}
	})
}

func FuzzDecodeEdge(f *testing.F) {
	f.Add(EncodeEdge(&Edge{}))
	f.Add(EncodeEdge(&Edge{From: 1, To: 1 << 60, Label: "FOLLOWS", Props: Props{"since": Int(2020), "w": Float(0.5)}}))
	f.Add([]byte{1, 1, 2, 1, 'x', 1, 1, 'k', byte(KindFloat)})
	f.Add([]byte{1, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEdge(b)
		if err != nil {
			return
		}
		enc := EncodeEdge(e)
		e2, err := DecodeEdge(enc)
		if err != nil || !edgesEqual(e, e2) {
			t.Fatalf("round trip: %+v -> %+v, %v", e, e2, err)
		}
		if !bytes.Equal(enc, EncodeEdge(e2)) {
			t.Fatal("encoding is not canonical")
		}
	})
}

// FuzzNodeRoundTrip builds valid nodes from fuzz input: encode then decode
// must give the same node back.
func FuzzNodeRoundTrip(f *testing.F) {
	f.Add("User", "name", "alice", int64(3), 1.5, []byte{1, 2}, true)
	f.Add("", "", "", int64(math.MinInt64), math.Inf(-1), []byte(nil), false)
	f.Fuzz(func(t *testing.T, label, key, s string, i int64, fl float64, bs []byte, bl bool) {
		n := &Node{Labels: []string{label, label + "2"}, Props: Props{key: String(s), key + "i": Int(i),
			key + "f": Float(fl), key + "b": Bytes(bs), key + "t": Bool(bl), key + "n": Null()}}
		got, err := DecodeNode(EncodeNode(n))
		if err != nil || !nodesEqual(n, got) {
			t.Fatalf("round trip %+v -> %+v, %v", n, got, err)
		}
		e := &Edge{From: uint64(i), To: uint64(len(s)), Label: label, Props: n.Props}
		ge, err := DecodeEdge(EncodeEdge(e))
		if err != nil || !edgesEqual(e, ge) {
			t.Fatalf("edge round trip %+v -> %+v, %v", e, ge, err)
		}
		// index keys: equal values give equal keys, different values different keys
		for _, v := range n.Props {
			if !bytes.Equal(IndexKey(nil, v), IndexKey(nil, v)) {
				t.Fatal("index key not deterministic")
			}
		}
		if s != label && !Hashed(String(s)) && !Hashed(String(label)) &&
			bytes.Equal(IndexKey(nil, String(s)), IndexKey(nil, String(label))) {
			t.Fatalf("index keys of %q and %q collide", s, label)
		}
	})
}

// Decoded strings are copies: the record's bytes (a cached page image, in
// the engine) may be reused afterwards. Records large enough to get one
// copy per string, and small ones that share a copy, both hold.
func TestDecodedStringsOutliveTheRecord(t *testing.T) {
	for _, n := range append(sampleNodes(), &Node{Labels: []string{"big"},
		Props: Props{"v": String(string(bytes.Repeat([]byte("y"), 2*maxSharedRecord))), "b": Bytes([]byte("raw"))}}) {
		b := EncodeNode(n)
		got, err := DecodeNode(b)
		if err != nil {
			t.Fatal(err)
		}
		clear(b)
		if !nodesEqual(got, n) {
			t.Fatalf("after clearing the record: %+v, want %+v", got, n)
		}
		if got.Labels == nil {
			t.Fatal("labels decode to nil, want an empty slice")
		}
		e := &Edge{From: 1, To: 2, Label: "KNOWS", Props: n.Props}
		eb := EncodeEdge(e)
		ge, err := DecodeEdge(eb)
		if err != nil {
			t.Fatal(err)
		}
		clear(eb)
		if !edgesEqual(ge, e) {
			t.Fatalf("edge after clearing the record: %+v, want %+v", ge, e)
		}
	}
}
