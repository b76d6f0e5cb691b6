package gengraph

import (
	"bytes"
	"fmt"
	"math"
)

// Kind tags the variant held by a Value.
type Kind uint8

// The kinds of property value the generator produces.
const (
	KindNull Kind = iota
	KindBool
	KindInt
	KindFloat
	KindString
	KindBytes
)

var kindNames = [...]string{"null", "bool", "int", "float", "string", "bytes"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Value is a small tagged union for property values. Only the field that
// matches Kind is meaningful.
type Value struct {
	Kind  Kind
	B     bool
	I     int64
	F     float64
	S     string
	Bytes []byte
}

// Null returns a null value.
func Null() Value { return Value{Kind: KindNull} }

// Bool returns a boolean value.
func Bool(b bool) Value { return Value{Kind: KindBool, B: b} }

// Int returns an integer value.
func Int(i int64) Value { return Value{Kind: KindInt, I: i} }

// Float returns a floating-point value.
func Float(f float64) Value { return Value{Kind: KindFloat, F: f} }

// String returns a string value.
func String(s string) Value { return Value{Kind: KindString, S: s} }

// Bytes returns a byte-string value. The slice is not copied.
func Bytes(b []byte) Value { return Value{Kind: KindBytes, Bytes: b} }

// Equal reports whether v and w hold the same kind and payload. Floats are
// compared bit for bit, so NaN equals NaN.
func (v Value) Equal(w Value) bool {
	if v.Kind != w.Kind {
		return false
	}
	switch v.Kind {
	case KindNull:
		return true
	case KindBool:
		return v.B == w.B
	case KindInt:
		return v.I == w.I
	case KindFloat:
		return math.Float64bits(v.F) == math.Float64bits(w.F)
	case KindString:
		return v.S == w.S
	case KindBytes:
		return bytes.Equal(v.Bytes, w.Bytes)
	}
	return false
}

// GoString renders the value for debugging.
func (v Value) GoString() string {
	switch v.Kind {
	case KindNull:
		return "null"
	case KindBool:
		return fmt.Sprint(v.B)
	case KindInt:
		return fmt.Sprint(v.I)
	case KindFloat:
		return fmt.Sprint(v.F)
	case KindString:
		return fmt.Sprintf("%q", v.S)
	case KindBytes:
		return fmt.Sprintf("bytes[%d]", len(v.Bytes))
	}
	return v.Kind.String()
}
