package cluster

// wire.go is sombra-server's HTTP/JSON protocol: the documents both the
// server (internal/commands/server) and Client use, so the two cannot
// drift apart.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/sombradb/sombra/engine"
)

// APIPrefix is the path prefix of the versioned endpoints.
const APIPrefix = "/v1"

// HeaderMinLSN on a read asks the server to wait (up to the request's
// deadline, at most MaxMinLSNWait) until it has applied that LSN:
// read-your-writes against a replica.
const HeaderMinLSN = "X-Sombra-Min-LSN"

// HeaderLSN carries the LSN of the database state a response reflects
// (the commit LSN for writes, the applied LSN for reads).
const HeaderLSN = "X-Sombra-LSN"

// Props are property values as JSON: null, true/false, strings and
// integers as themselves, floats always with a fraction or exponent (1.0,
// not 1) so that they read back as floats, bytes as {"bytes":"<base64>"},
// and the floats JSON has no number for as {"float":"NaN"|"+Inf"|"-Inf"}.
type Props engine.Properties

// MarshalJSON implements json.Marshaler.
func (p Props) MarshalJSON() ([]byte, error) {
	if p == nil {
		return []byte("{}"), nil
	}
	m := make(map[string]json.RawMessage, len(p))
	for k, v := range p {
		b, err := MarshalValue(v)
		if err != nil {
			return nil, fmt.Errorf("property %q: %w", k, err)
		}
		m[k] = b
	}
	return json.Marshal(m)
}

// UnmarshalJSON implements json.Unmarshaler.
func (p *Props) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	out := make(Props, len(m))
	for k, raw := range m {
		v, err := UnmarshalValue(raw)
		if err != nil {
			return fmt.Errorf("property %q: %w", k, err)
		}
		out[k] = v
	}
	*p = out
	return nil
}

// MarshalValue encodes one property value as Props does.
func MarshalValue(v engine.PropertyValue) ([]byte, error) {
	switch v.Kind() {
	case engine.KindNull:
		return []byte("null"), nil
	case engine.KindBool:
		b, _ := v.Bool()
		return json.Marshal(b)
	case engine.KindInt:
		i, _ := v.Int()
		return strconv.AppendInt(nil, i, 10), nil
	case engine.KindFloat:
		f, _ := v.Float()
		switch {
		case math.IsNaN(f):
			return []byte(`{"float":"NaN"}`), nil
		case math.IsInf(f, 1):
			return []byte(`{"float":"+Inf"}`), nil
		case math.IsInf(f, -1):
			return []byte(`{"float":"-Inf"}`), nil
		}
		s := strconv.FormatFloat(f, 'g', -1, 64)
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
		return []byte(s), nil
	case engine.KindString:
		s, _ := v.Str()
		return json.Marshal(s)
	case engine.KindBytes:
		b, _ := v.BytesValue()
		return json.Marshal(map[string]string{"bytes": base64.StdEncoding.EncodeToString(b)})
	}
	return nil, fmt.Errorf("property value of kind %v: %w", v.Kind(), engine.ErrInvalid)
}

// UnmarshalValue decodes one property value (see Props).
func UnmarshalValue(raw []byte) (engine.PropertyValue, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return engine.NullValue(), fmt.Errorf("empty value: %w", engine.ErrInvalid)
	}
	switch raw[0] {
	case 'n':
		return engine.NullValue(), nil
	case 't', 'f':
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return engine.NullValue(), fmt.Errorf("%s: %w", raw, engine.ErrInvalid)
		}
		return engine.BoolValue(b), nil
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return engine.NullValue(), fmt.Errorf("%s: %w", raw, engine.ErrInvalid)
		}
		return engine.StringValue(s), nil
	case '{':
		var o struct {
			Bytes *string `json:"bytes"`
			Float *string `json:"float"`
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			return engine.NullValue(), fmt.Errorf("%s: %w", raw, engine.ErrInvalid)
		}
		switch {
		case o.Bytes != nil:
			b, err := base64.StdEncoding.DecodeString(*o.Bytes)
			if err != nil {
				return engine.NullValue(), fmt.Errorf("bytes value: %w: %w", err, engine.ErrInvalid)
			}
			return engine.BytesValue(b), nil
		case o.Float != nil:
			f, err := strconv.ParseFloat(*o.Float, 64)
			if err != nil {
				return engine.NullValue(), fmt.Errorf("float value %q: %w", *o.Float, engine.ErrInvalid)
			}
			return engine.FloatValue(f), nil
		}
		return engine.NullValue(), fmt.Errorf("%s: want {\"bytes\": ...} or {\"float\": ...}: %w", raw, engine.ErrInvalid)
	}
	s := string(raw)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return engine.IntValue(i), nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return engine.NullValue(), fmt.Errorf("%s: not a property value: %w", raw, engine.ErrInvalid)
	}
	return engine.FloatValue(f), nil
}

// Node is a node as the API returns it.
type Node struct {
	ID         engine.NodeID `json:"id"`
	Labels     []string      `json:"labels"`
	Properties Props         `json:"properties"`
}

// Edge is an edge as the API returns it.
type Edge struct {
	ID         engine.EdgeID `json:"id"`
	From       engine.NodeID `json:"from"`
	To         engine.NodeID `json:"to"`
	Label      string        `json:"label"`
	Properties Props         `json:"properties"`
}

// NodeFromEngine converts an engine node.
func NodeFromEngine(n *engine.Node) Node {
	return Node{ID: n.ID, Labels: n.Labels, Properties: Props(n.Properties)}
}

// EdgeFromEngine converts an engine edge.
func EdgeFromEngine(e *engine.Edge) Edge {
	return Edge{ID: e.ID, From: e.From, To: e.To, Label: e.Label, Properties: Props(e.Properties)}
}

// CreateNodeRequest is the body of POST /v1/nodes.
type CreateNodeRequest struct {
	Labels     []string `json:"labels"`
	Properties Props    `json:"properties,omitempty"`
}

// CreateEdgeRequest is the body of POST /v1/edges.
type CreateEdgeRequest struct {
	From       engine.NodeID `json:"from"`
	To         engine.NodeID `json:"to"`
	Label      string        `json:"label"`
	Properties Props         `json:"properties,omitempty"`
}

// UpdatePropertiesRequest is the body of PATCH /v1/nodes/{id}/properties:
// set these, then remove those.
type UpdatePropertiesRequest struct {
	Set    Props    `json:"set,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

// WriteResult answers every write: the id created (if any) and the commit
// LSN, which a later read passes as MinLSN to see the write.
type WriteResult struct {
	ID  uint64 `json:"id,omitempty"`
	LSN uint64 `json:"lsn"`
}

// Neighbor is one edge at a node and the node at its other end.
type Neighbor struct {
	Edge      engine.EdgeID `json:"edge"`
	Node      engine.NodeID `json:"node"`
	Label     string        `json:"label"`
	Direction string        `json:"direction"` // out or in
}

// NeighborsResult answers GET /v1/nodes/{id}/neighbors.
type NeighborsResult struct {
	Neighbors []Neighbor `json:"neighbors"`
	LSN       uint64     `json:"lsn"`
}

// IDsResult answers queries returning node ids.
type IDsResult struct {
	IDs []engine.NodeID `json:"ids"`
	LSN uint64          `json:"lsn"`
}

// Batch operation kinds.
const (
	OpCreateNode    = "create_node"
	OpCreateEdge    = "create_edge"
	OpSetProperties = "set_properties"
	OpDeleteNode    = "delete_node"
	OpDeleteEdge    = "delete_edge"
)

// Op is one operation of a batch. A create_edge may name its ends by the
// index in the batch of an earlier create_node (FromOp, ToOp) instead of
// an id, so one batch can create a node and its edges.
type Op struct {
	Op         string   `json:"op"`
	ID         uint64   `json:"id,omitempty"` // set_properties, delete_node, delete_edge
	Labels     []string `json:"labels,omitempty"`
	Label      string   `json:"label,omitempty"`
	Properties Props    `json:"properties,omitempty"`
	From       uint64   `json:"from,omitempty"`
	To         uint64   `json:"to,omitempty"`
	FromOp     *int     `json:"from_op,omitempty"`
	ToOp       *int     `json:"to_op,omitempty"`
	Set        Props    `json:"set,omitempty"`
	Remove     []string `json:"remove,omitempty"`
}

// BatchRequest is the body of POST /v1/batch: all operations commit in
// one transaction, or none does.
type BatchRequest struct {
	Ops []Op `json:"ops"`
}

// BatchResult answers a batch: per operation the id it created (0 for
// the others), and the commit LSN.
type BatchResult struct {
	IDs []uint64 `json:"ids"`
	LSN uint64   `json:"lsn"`
}

// Roles an instance reports.
const (
	RolePrimary    = "primary"
	RoleReplica    = "replica"
	RoleStandalone = "standalone" // no replication: reads and writes
	RoleDiverged   = "diverged"
)

// Status answers GET /v1/status.
type Status struct {
	Role        string  `json:"role"`
	Node        string  `json:"node,omitempty"`
	Mode        string  `json:"mode,omitempty"`
	Advertise   string  `json:"advertise,omitempty"`
	PrimaryNode string  `json:"primary_node,omitempty"`
	PrimaryAddr string  `json:"primary_addr,omitempty"`
	AppliedLSN  uint64  `json:"applied_lsn"`
	LagSeconds  float64 `json:"lag_seconds"`
	Pending     uint64  `json:"pending"`
	Ready       bool    `json:"ready"`
	Error       string  `json:"error,omitempty"`
}

// Writable reports whether the instance takes writes.
func (s Status) Writable() bool { return s.Role == RolePrimary || s.Role == RoleStandalone }

// ErrorBody is every error response.
type ErrorBody struct {
	Error string `json:"error"`
	// Kind names the class: not_primary, not_found, invalid, unauthorized,
	// forbidden, unavailable, busy, conflict, internal.
	Kind string `json:"kind"`
	// Primary is the address of the primary, on not_primary errors.
	Primary string `json:"primary,omitempty"`
}

// Error kinds.
const (
	KindNotPrimary   = "not_primary"
	KindNotFound     = "not_found"
	KindInvalid      = "invalid"
	KindUnauthorized = "unauthorized"
	KindForbidden    = "forbidden"
	KindUnavailable  = "unavailable"
	KindBusy         = "busy"
	KindInternal     = "internal"
)

// HashResult answers GET /v1/hash: the database's logical hash (the
// engine's LogicalHash) at LSN: two instances at the same LSN hold the
// same graph exactly when their hashes are equal.
type HashResult struct {
	Hash string `json:"hash"`
	LSN  uint64 `json:"lsn"`
}
