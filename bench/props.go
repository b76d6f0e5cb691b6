package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/sombradb/sombra/internal/gengraph"
)

// Property maps are stored by SQLite and bbolt in one compact binary
// encoding:
//
//	uvarint count, then per property:
//	  uvarint len(key), key, kind byte, payload
//
// with payloads: bool 1 byte; int zig-zag varint; float 8 bytes
// little-endian; string and bytes uvarint length + data; null nothing.

var errShort = errors.New("props: truncated encoding")

// AppendProps appends the encoding of p to dst.
func AppendProps(dst []byte, p map[string]gengraph.Value) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(p)))
	for k, v := range p {
		dst = binary.AppendUvarint(dst, uint64(len(k)))
		dst = append(dst, k...)
		dst = append(dst, byte(v.Kind))
		switch v.Kind {
		case gengraph.KindNull:
		case gengraph.KindBool:
			if v.B {
				dst = append(dst, 1)
			} else {
				dst = append(dst, 0)
			}
		case gengraph.KindInt:
			dst = binary.AppendVarint(dst, v.I)
		case gengraph.KindFloat:
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v.F))
		case gengraph.KindString:
			dst = binary.AppendUvarint(dst, uint64(len(v.S)))
			dst = append(dst, v.S...)
		case gengraph.KindBytes:
			dst = binary.AppendUvarint(dst, uint64(len(v.Bytes)))
			dst = append(dst, v.Bytes...)
		}
	}
	return dst
}

// DecodeProps decodes an AppendProps encoding. Strings and byte slices are
// copied, so b may be reused afterwards (bbolt values are only valid inside
// their transaction).
func DecodeProps(b []byte) (map[string]gengraph.Value, error) {
	n, b, err := uvarint(b)
	if err != nil {
		return nil, err
	}
	if n > uint64(len(b)) {
		return nil, errShort
	}
	p := make(map[string]gengraph.Value, n)
	for range n {
		var k []byte
		if k, b, err = lenPrefixed(b); err != nil {
			return nil, err
		}
		if len(b) == 0 {
			return nil, errShort
		}
		kind := gengraph.Kind(b[0])
		b = b[1:]
		var v gengraph.Value
		switch kind {
		case gengraph.KindNull:
			v = gengraph.Null()
		case gengraph.KindBool:
			if len(b) < 1 {
				return nil, errShort
			}
			v = gengraph.Bool(b[0] != 0)
			b = b[1:]
		case gengraph.KindInt:
			x, w := binary.Varint(b)
			if w <= 0 {
				return nil, errShort
			}
			v = gengraph.Int(x)
			b = b[w:]
		case gengraph.KindFloat:
			if len(b) < 8 {
				return nil, errShort
			}
			v = gengraph.Float(math.Float64frombits(binary.LittleEndian.Uint64(b)))
			b = b[8:]
		case gengraph.KindString:
			var s []byte
			if s, b, err = lenPrefixed(b); err != nil {
				return nil, err
			}
			v = gengraph.String(string(s))
		case gengraph.KindBytes:
			var s []byte
			if s, b, err = lenPrefixed(b); err != nil {
				return nil, err
			}
			v = gengraph.Bytes(append([]byte(nil), s...))
		default:
			return nil, fmt.Errorf("props: unknown kind %d", kind)
		}
		p[string(k)] = v
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("props: %d trailing bytes", len(b))
	}
	return p, nil
}

func uvarint(b []byte) (uint64, []byte, error) {
	x, w := binary.Uvarint(b)
	if w <= 0 {
		return 0, nil, errShort
	}
	return x, b[w:], nil
}

func lenPrefixed(b []byte) ([]byte, []byte, error) {
	n, b, err := uvarint(b)
	if err != nil {
		return nil, nil, err
	}
	if n > uint64(len(b)) {
		return nil, nil, errShort
	}
	return b[:n], b[n:], nil
}

// newNodeProps returns the small property map used by the durable-commit
// workloads.
func newNodeProps(seq int64) map[string]gengraph.Value {
	return map[string]gengraph.Value{
		gengraph.PropName:    gengraph.String("bench node"),
		gengraph.PropCreated: gengraph.Int(1_700_000_000 + seq),
		gengraph.PropActive:  gengraph.Bool(true),
	}
}

// newNodeLabel is the label of nodes inserted by the durable-commit workloads.
const newNodeLabel = "Person"
