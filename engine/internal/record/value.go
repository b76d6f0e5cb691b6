// Package record encodes property values, nodes and edges as bytes, and the
// keys of the secondary indexes. Decoders never panic: bad bytes are errors.
package record

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Kind is the type of a property value.
type Kind byte

const (
	KindNull Kind = iota
	KindBool
	KindInt
	KindFloat
	KindString
	KindBytes
)

func (k Kind) String() string {
	switch k {
	case KindNull:
		return "null"
	case KindBool:
		return "bool"
	case KindInt:
		return "int"
	case KindFloat:
		return "float"
	case KindString:
		return "string"
	case KindBytes:
		return "bytes"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is a property value. The zero Value is null.
type Value struct {
	kind Kind
	i    int64
	f    float64
	s    string // strings and bytes
}

func Null() Value { return Value{} }
func Bool(b bool) Value {
	v := Value{kind: KindBool}
	if b {
		v.i = 1
	}
	return v
}
func Int(i int64) Value      { return Value{kind: KindInt, i: i} }
func Float(f float64) Value  { return Value{kind: KindFloat, f: f} }
func String(s string) Value  { return Value{kind: KindString, s: s} }
func Bytes(b []byte) Value   { return Value{kind: KindBytes, s: string(b)} }
func (v Value) Kind() Kind   { return v.kind }
func (v Value) IsNull() bool { return v.kind == KindNull }

// Bool returns the value as a bool and whether it is one.
func (v Value) Bool() (bool, bool) { return v.i != 0, v.kind == KindBool }

// Int returns the value as an int64 and whether it is one.
func (v Value) Int() (int64, bool) { return v.i, v.kind == KindInt }

// Float returns the value as a float64 and whether it is one.
func (v Value) Float() (float64, bool) { return v.f, v.kind == KindFloat }

// Str returns the value as a string and whether it is one.
func (v Value) Str() (string, bool) { return v.s, v.kind == KindString }

// Bytes returns the value as bytes and whether it is one.
func (v Value) BytesValue() ([]byte, bool) { return []byte(v.s), v.kind == KindBytes }

// Equal reports whether two values have the same kind and content. Floats
// compare by bits so NaN equals itself (what an index needs).
func (v Value) Equal(o Value) bool {
	if v.kind != o.kind {
		return false
	}
	switch v.kind {
	case KindFloat:
		return math.Float64bits(v.f) == math.Float64bits(o.f)
	case KindString, KindBytes:
		return v.s == o.s
	}
	return v.i == o.i
}

// Any returns the value as a plain Go value (nil, bool, int64, float64,
// string or []byte), e.g. for JSON.
func (v Value) Any() any {
	switch v.kind {
	case KindBool:
		return v.i != 0
	case KindInt:
		return v.i
	case KindFloat:
		return v.f
	case KindString:
		return v.s
	case KindBytes:
		return []byte(v.s)
	}
	return nil
}

func (v Value) String() string {
	switch v.kind {
	case KindNull:
		return "null"
	case KindBool:
		return strconv.FormatBool(v.i != 0)
	case KindInt:
		return strconv.FormatInt(v.i, 10)
	case KindFloat:
		return strconv.FormatFloat(v.f, 'g', -1, 64)
	case KindString:
		return strconv.Quote(v.s)
	}
	return fmt.Sprintf("bytes[%d]", len(v.s))
}

// Props is a property map.
type Props = map[string]Value

// ErrDecode is wrapped by every decoding failure.
var ErrDecode = errors.New("malformed record")

func appendValue(b []byte, v Value) []byte {
	b = append(b, byte(v.kind))
	switch v.kind {
	case KindBool:
		b = append(b, byte(v.i))
	case KindInt:
		b = binary.AppendVarint(b, v.i)
	case KindFloat:
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.f))
	case KindString, KindBytes:
		b = binary.AppendUvarint(b, uint64(len(v.s)))
		b = append(b, v.s...)
	}
	return b
}

type decoder struct {
	b   []byte
	err error
	// src, when set, is a string copy of the whole record (len(src) bytes,
	// of which b is the unread tail): strings are then cut from it rather
	// than copied one by one, so decoding a record costs one allocation
	// for all its labels, names and string values instead of one each.
	src string
}

// shareStrings makes the decoder cut its strings from one copy of the
// record. Only small records do: every string keeps the whole copy alive.
func (d *decoder) shareStrings() {
	if len(d.b) <= maxSharedRecord {
		d.src = string(d.b)
	}
}

// maxSharedRecord bounds what one retained property string can pin.
const maxSharedRecord = 4096

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrDecode, what)
	}
}

func (d *decoder) byte1() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail("short byte")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) bytesN(n uint64) []byte {
	if d.err != nil || uint64(len(d.b)) < n {
		d.fail("short data")
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.src == "" {
		return string(d.bytesN(n))
	}
	start := len(d.src) - len(d.b)
	if len(d.bytesN(n)) != int(n) || d.err != nil {
		return ""
	}
	return d.src[start : start+int(n)]
}

func (d *decoder) value() Value {
	k := Kind(d.byte1())
	switch k {
	case KindNull:
		return Null()
	case KindBool:
		c := d.byte1()
		if c > 1 {
			d.fail("bad bool")
		}
		return Bool(c == 1)
	case KindInt:
		return Int(d.varint())
	case KindFloat:
		b := d.bytesN(8)
		if len(b) != 8 { // short data: bytesN recorded the error
			return Null()
		}
		return Float(math.Float64frombits(binary.LittleEndian.Uint64(b)))
	case KindString:
		return String(d.str())
	case KindBytes:
		// the value holds its bytes as a string: no copy via []byte
		return Value{kind: KindBytes, s: d.str()}
	}
	d.fail("unknown value kind " + strconv.Itoa(int(k)))
	return Null()
}

func appendProps(b []byte, p Props) []byte {
	// A few properties sort on the stack: records are encoded for every
	// element of a bulk load.
	var small [8]string
	keys := small[:0]
	for k := range p {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = appendValue(b, p[k])
	}
	return b
}

func (d *decoder) props() Props {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("property count exceeds record")
		return nil
	}
	p := make(Props, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.str()
		p[k] = d.value()
	}
	return p
}

// IndexKey encodes v so that equal values give equal, self-delimiting
// bytes: kind, then a fixed-width or length-prefixed payload. Strings and
// bytes longer than 200 bytes are replaced by a SHA-256 digest (the index
// then finds candidates, and the caller compares the stored value).
func IndexKey(b []byte, v Value) []byte {
	b = append(b, byte(v.kind))
	switch v.kind {
	case KindBool:
		b = append(b, byte(v.i))
	case KindInt:
		b = binary.BigEndian.AppendUint64(b, uint64(v.i)^(1<<63))
	case KindFloat:
		bits := math.Float64bits(v.f)
		if bits&(1<<63) != 0 {
			bits = ^bits
		} else {
			bits |= 1 << 63
		}
		b = binary.BigEndian.AppendUint64(b, bits)
	case KindString, KindBytes:
		if len(v.s) <= 200 {
			b = binary.BigEndian.AppendUint16(b, uint16(len(v.s)))
			b = append(b, v.s...)
		} else {
			sum := sha256.Sum256([]byte(v.s))
			b = binary.BigEndian.AppendUint16(b, 0xFFFF)
			b = append(b, sum[:]...)
		}
	}
	return b
}

// Hashed reports whether IndexKey stores a digest rather than the value.
func Hashed(v Value) bool {
	return (v.kind == KindString || v.kind == KindBytes) && len(v.s) > 200
}

// CompareProps reports whether two property maps are equal.
func EqualProps(a, b Props) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !v.Equal(w) {
			return false
		}
	}
	return true
}
