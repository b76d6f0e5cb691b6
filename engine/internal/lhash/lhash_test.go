package lhash

import (
	"fmt"
	"testing"
)

func TestOrderIndependentAndSensitive(t *testing.T) {
	recs := make([][2][]byte, 100)
	for i := range recs {
		recs[i] = [2][]byte{[]byte(fmt.Sprintf("k%03d", i)), []byte(fmt.Sprintf("value %d", i))}
	}
	sum := func(order []int, tree func(i int) int) string {
		var h Hasher
		for _, i := range order {
			h.Add(tree(i), recs[i][0], recs[i][1])
		}
		return h.Sum()
	}
	fwd, rev := make([]int, len(recs)), make([]int, len(recs))
	for i := range recs {
		fwd[i], rev[i] = i, len(recs)-1-i
	}
	nodes := func(int) int { return 0 }
	a := sum(fwd, nodes)
	if b := sum(rev, nodes); a != b {
		t.Fatalf("order changed the hash: %s vs %s", a, b)
	}
	// Split into two halves merged: the same.
	var h1, h2 Hasher
	for i := range recs {
		if i%2 == 0 {
			h1.Add(0, recs[i][0], recs[i][1])
		} else {
			h2.Add(0, recs[i][0], recs[i][1])
		}
	}
	h1.Merge(&h2)
	if h1.Sum() != a {
		t.Fatal("merged halves differ from one pass")
	}
	if b := sum(fwd[1:], nodes); a == b {
		t.Fatal("a missing record left the hash unchanged")
	}
	if b := sum(fwd, func(i int) int { return i % 2 }); a == b {
		t.Fatal("moving records to the edge tree left the hash unchanged")
	}
	recs[7][1] = []byte("value 8") // altered value
	if b := sum(fwd, nodes); a == b {
		t.Fatal("an altered value left the hash unchanged")
	}
	recs[7][1] = []byte("value 7")
	// key/value boundary: "k007"+"value 7" vs "k007v"+"alue 7"
	recs[7] = [2][]byte{[]byte("k007v"), []byte("alue 7")}
	if b := sum(fwd, nodes); a == b {
		t.Fatal("moving the key/value boundary left the hash unchanged")
	}
}
