package record

import (
	"encoding/binary"
	"fmt"
)

const recVersion = 1

// Node is a decoded node record.
type Node struct {
	Labels []string
	Props  Props
}

// Edge is a decoded edge record.
type Edge struct {
	From, To uint64
	Label    string
	Props    Props
}

// EncodeNode: version byte, label count, labels, properties.
func EncodeNode(n *Node) []byte { return AppendNode(nil, n) }

// AppendNode appends n's encoding (EncodeNode) to b.
func AppendNode(b []byte, n *Node) []byte {
	b = append(b, recVersion)
	b = binary.AppendUvarint(b, uint64(len(n.Labels)))
	for _, l := range n.Labels {
		b = binary.AppendUvarint(b, uint64(len(l)))
		b = append(b, l...)
	}
	return appendProps(b, n.Props)
}

// DecodeNode parses a node record.
func DecodeNode(b []byte) (*Node, error) {
	n := &Node{}
	if err := DecodeNodeInto(b, n, nil); err != nil {
		return nil, err
	}
	return n, nil
}

// DecodeNodeInto parses a node record into n. Labels go into labelBuf's
// backing array when it has room (so a caller can allocate the slice
// together with the struct that holds it). The strings share one copy of
// the record: the record's bytes may be reused afterwards.
func DecodeNodeInto(b []byte, n *Node, labelBuf []string) error {
	d := decoder{b: b}
	d.shareStrings()
	if v := d.byte1(); v != recVersion && d.err == nil {
		return fmt.Errorf("%w: node record version %d", ErrDecode, v)
	}
	cnt := d.uvarint()
	if cnt > uint64(len(d.b)) {
		return fmt.Errorf("%w: label count exceeds record", ErrDecode)
	}
	labels := labelBuf[:0]
	if labels == nil || uint64(cap(labels)) < cnt { // never nil: callers print [] for no labels
		labels = make([]string, 0, cnt)
	}
	for i := uint64(0); i < cnt && d.err == nil; i++ {
		labels = append(labels, d.str())
	}
	n.Labels = labels
	n.Props = d.props()
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}

// EncodeEdge: version byte, from, to, label, properties.
func EncodeEdge(e *Edge) []byte { return AppendEdge(nil, e) }

// AppendEdge appends e's encoding (EncodeEdge) to b.
func AppendEdge(b []byte, e *Edge) []byte {
	b = append(b, recVersion)
	b = binary.AppendUvarint(b, e.From)
	b = binary.AppendUvarint(b, e.To)
	b = binary.AppendUvarint(b, uint64(len(e.Label)))
	b = append(b, e.Label...)
	return appendProps(b, e.Props)
}

// DecodeEdge parses an edge record.
func DecodeEdge(b []byte) (*Edge, error) {
	d := decoder{b: b}
	d.shareStrings()
	if v := d.byte1(); v != recVersion && d.err == nil {
		return nil, fmt.Errorf("%w: edge record version %d", ErrDecode, v)
	}
	e := &Edge{From: d.uvarint(), To: d.uvarint()}
	e.Label = d.str()
	e.Props = d.props()
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	return e, nil
}
