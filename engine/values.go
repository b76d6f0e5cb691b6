package engine

import "github.com/sombradb/sombra/engine/internal/record"

// PropertyValue is a typed property value: null, bool, int64, float64,
// string or bytes. Build one with StringValue, IntValue, FloatValue,
// BoolValue, BytesValue or NullValue; compare with Equal.
type PropertyValue = record.Value

// ValueKind is the type of a PropertyValue.
type ValueKind = record.Kind

// Value kinds.
const (
	KindNull   = record.KindNull
	KindBool   = record.KindBool
	KindInt    = record.KindInt
	KindFloat  = record.KindFloat
	KindString = record.KindString
	KindBytes  = record.KindBytes
)

// Properties maps property names to values.
type Properties = map[string]PropertyValue

// StringValue returns a string property value.
func StringValue(s string) PropertyValue { return record.String(s) }

// IntValue returns an integer property value.
func IntValue(i int64) PropertyValue { return record.Int(i) }

// FloatValue returns a floating-point property value.
func FloatValue(f float64) PropertyValue { return record.Float(f) }

// BoolValue returns a boolean property value.
func BoolValue(b bool) PropertyValue { return record.Bool(b) }

// BytesValue returns a byte-string property value (the slice is copied).
func BytesValue(b []byte) PropertyValue { return record.Bytes(b) }

// NullValue returns the null property value.
func NullValue() PropertyValue { return record.Null() }

// NodeID identifies a node. Ids are assigned in creation order from 1.
type NodeID uint64

// EdgeID identifies an edge.
type EdgeID uint64

// Node is a node with its labels and properties.
type Node struct {
	ID         NodeID
	Labels     []string
	Properties Properties
}

// Label returns the node's first label ("" if it has none).
func (n *Node) Label() string {
	if len(n.Labels) == 0 {
		return ""
	}
	return n.Labels[0]
}

// Edge is a directed, labelled edge with properties.
type Edge struct {
	ID         EdgeID
	From, To   NodeID
	Label      string
	Properties Properties
}
