// Package lhash computes the logical hash of a graph: a digest of every
// node and edge record (key and value bytes) that does not depend on the
// order the records are visited in. Order independence is what lets a
// backup hash the records in the same pass that copies the pages, in file
// order, and still agree with a walk of the trees in key order (and with
// the same graph compacted into another page layout).
//
// Each record is hashed on its own (two 64-bit xxHash digests under
// different seeds, over key, value length and value); the digests of a tree
// are summed lane-wise modulo 2^64 and counted; the result is the SHA-256
// of a version tag and the per-tree counts and sums. A missing, extra or
// altered record changes the result but for a 2^-128 chance (this guards
// against damage and mistakes, not against an adversary forging records).
package lhash

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"github.com/cespare/xxhash/v2"
)

// Trees is the number of trees hashed: nodes (0) and edges (1).
const Trees = 2

const (
	seed0 = 0x736f6d6272612d30 // "sombra-0"
	seed1 = 0x736f6d6272612d31 // "sombra-1"
)

// Hasher accumulates records. The zero value is ready to use.
type Hasher struct {
	n   [Trees]uint64
	sum [Trees][2]uint64
	d   [2]*xxhash.Digest
	lb  [8]byte
}

// Add adds record (k, v) of tree t (0 nodes, 1 edges).
func (h *Hasher) Add(t int, k, v []byte) {
	if h.d[0] == nil {
		h.d[0], h.d[1] = xxhash.NewWithSeed(seed0), xxhash.NewWithSeed(seed1)
	}
	binary.BigEndian.PutUint64(h.lb[:], uint64(len(v)))
	for i, seed := range [2]uint64{seed0, seed1} {
		d := h.d[i]
		d.ResetWithSeed(seed)
		d.Write(k)
		d.Write(h.lb[:])
		d.Write(v)
		h.sum[t][i] += d.Sum64()
	}
	h.n[t]++
}

// Merge adds the records of o.
func (h *Hasher) Merge(o *Hasher) {
	for t := range Trees {
		h.n[t] += o.n[t]
		h.sum[t][0] += o.sum[t][0]
		h.sum[t][1] += o.sum[t][1]
	}
}

// Count reports how many records of tree t were added.
func (h *Hasher) Count(t int) uint64 { return h.n[t] }

// Sum returns the logical hash (64 hex digits).
func (h *Hasher) Sum() string {
	s := sha256.New()
	s.Write([]byte("sombra logical hash v2\n"))
	var b [24]byte
	for t := range Trees {
		binary.BigEndian.PutUint64(b[0:], h.n[t])
		binary.BigEndian.PutUint64(b[8:], h.sum[t][0])
		binary.BigEndian.PutUint64(b[16:], h.sum[t][1])
		s.Write(b[:])
	}
	return hex.EncodeToString(s.Sum(nil))
}
