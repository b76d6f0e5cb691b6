package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sombradb/sombra/engine"
)

// Client is one sombra-server instance: the engine's graph operations
// over HTTP. It is safe for concurrent use. Every call takes a context;
// errors are *Error (matching ErrNotPrimary, ErrNotFound, ...) or wrap
// ErrUnreachable.
type Client struct {
	hc     *http.Client
	token  string
	minLSN uint64
	follow bool

	mu   sync.Mutex
	base string // scheme://host:port
}

// Option configures a Client or a LoadBalancer.
type Option func(*options)

type options struct {
	hc           *http.Client
	token        string
	maxLag       time.Duration
	writeWait    time.Duration
	readWait     time.Duration
	checkTimeout time.Duration
}

func defaultOptions() options {
	return options{hc: &http.Client{Timeout: 30 * time.Second}, maxLag: 5 * time.Second, writeWait: 30 * time.Second,
		readWait: 2 * time.Second, checkTimeout: 2 * time.Second}
}

// WithToken sends "Authorization: Bearer token" (see --token-file).
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithHTTPClient uses hc (TLS settings, proxies, timeouts).
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.hc = hc } }

// WithMaxLag: the load balancer reads only from replicas lagging less
// than d (default 5s).
func WithMaxLag(d time.Duration) Option { return func(o *options) { o.maxLag = d } }

// WithWriteWait bounds how long GetWriteConnection waits for a primary to
// appear (a failover in progress; default 30s, cut short by the context).
func WithWriteWait(d time.Duration) Option { return func(o *options) { o.writeWait = d } }

// WithReadWait bounds how long GetReadConnection with MinLSN waits for a
// replica to apply the LSN before it falls back to the primary (default 2s).
func WithReadWait(d time.Duration) Option { return func(o *options) { o.readWait = d } }

// WithCheckTimeout bounds each instance's status request in a health
// check (default 2s): a hung instance must not hold the others up.
func WithCheckTimeout(d time.Duration) Option { return func(o *options) { o.checkTimeout = d } }

// NewClient returns a client of the instance at addr ("host:port", or a
// URL with http:// or https://).
func NewClient(addr string, opts ...Option) *Client {
	o := defaultOptions()
	for _, f := range opts {
		f(&o)
	}
	return &Client{hc: o.hc, token: o.token, base: normalize(addr)}
}

func normalize(addr string) string {
	addr = strings.TrimRight(addr, "/")
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return addr
}

// Addr is the instance's base URL (after a followed redirect, the
// primary's).
func (c *Client) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base
}

// AtLeast returns a client whose reads wait until the instance has
// applied LSN lsn (a write's commit LSN): read your writes on a replica.
func (c *Client) AtLeast(lsn uint64) *Client {
	return &Client{hc: c.hc, token: c.token, minLSN: lsn, follow: c.follow, base: c.Addr()}
}

// FollowPrimary returns a client whose writes, when refused by a replica
// that names the primary, go to the primary instead (and so do its later
// calls).
func (c *Client) FollowPrimary() *Client {
	return &Client{hc: c.hc, token: c.token, minLSN: c.minLSN, follow: true, base: c.Addr()}
}

// do sends one request and decodes a 2xx answer into out.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
	}
	for hops := 0; ; hops++ {
		base := c.Addr()
		err := c.once(ctx, method, base, path, payload, out)
		primary, redirected := PrimaryOf(err)
		if !redirected || !c.follow || method == http.MethodGet || hops >= 3 || normalize(primary) == base {
			return err
		}
		c.mu.Lock()
		if c.base == base {
			c.base = normalize(primary)
		}
		c.mu.Unlock()
	}
}

func (c *Client) once(ctx context.Context, method, base, path string, payload []byte, out any) error {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.minLSN > 0 && method == http.MethodGet {
		req.Header.Set(HeaderMinLSN, strconv.FormatUint(c.minLSN, 10))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s%s: %w", method, base, path, ctx.Err())
		}
		return fmt.Errorf("%s %s%s: %w: %w", method, base, path, err, ErrUnreachable)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("%s %s%s: read answer: %w: %w", method, base, path, err, ErrUnreachable)
	}
	if resp.StatusCode/100 != 2 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Kind == "" {
			eb = ErrorBody{Error: strings.TrimSpace(string(data)), Kind: KindInternal}
			if eb.Error == "" {
				eb.Error = resp.Status
			}
		}
		return &Error{Addr: base, Status: resp.StatusCode, Kind: eb.Kind, Message: eb.Error, Primary: eb.Primary}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s%s: decode answer: %w", method, base, path, err)
	}
	return nil
}

// Status reports the instance's role, applied LSN and lag.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, APIPrefix+"/status", nil, &st)
	return st, err
}

// GetNode returns node id.
func (c *Client) GetNode(ctx context.Context, id engine.NodeID) (*Node, error) {
	var n Node
	if err := c.do(ctx, http.MethodGet, fmt.Sprintf("%s/nodes/%d", APIPrefix, id), nil, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// GetEdge returns edge id.
func (c *Client) GetEdge(ctx context.Context, id engine.EdgeID) (*Edge, error) {
	var e Edge
	if err := c.do(ctx, http.MethodGet, fmt.Sprintf("%s/edges/%d", APIPrefix, id), nil, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// CreateNode creates a node; it returns its id and the commit LSN.
func (c *Client) CreateNode(ctx context.Context, labels []string, props engine.Properties) (engine.NodeID, uint64, error) {
	var res WriteResult
	err := c.do(ctx, http.MethodPost, APIPrefix+"/nodes", CreateNodeRequest{Labels: labels, Properties: Props(props)}, &res)
	return engine.NodeID(res.ID), res.LSN, err
}

// UpdateProperties sets set and removes remove on node id, in one
// transaction; it returns the commit LSN.
func (c *Client) UpdateProperties(ctx context.Context, id engine.NodeID, set engine.Properties, remove ...string) (uint64, error) {
	var res WriteResult
	err := c.do(ctx, http.MethodPatch, fmt.Sprintf("%s/nodes/%d/properties", APIPrefix, id),
		UpdatePropertiesRequest{Set: Props(set), Remove: remove}, &res)
	return res.LSN, err
}

// SetNodeProperty sets one property; it returns the commit LSN.
func (c *Client) SetNodeProperty(ctx context.Context, id engine.NodeID, key string, v engine.PropertyValue) (uint64, error) {
	return c.UpdateProperties(ctx, id, engine.Properties{key: v})
}

// DeleteNode deletes node id and its edges; it returns the commit LSN.
func (c *Client) DeleteNode(ctx context.Context, id engine.NodeID) (uint64, error) {
	var res WriteResult
	err := c.do(ctx, http.MethodDelete, fmt.Sprintf("%s/nodes/%d", APIPrefix, id), nil, &res)
	return res.LSN, err
}

// CreateEdge creates an edge; it returns its id and the commit LSN.
func (c *Client) CreateEdge(ctx context.Context, from, to engine.NodeID, label string, props engine.Properties) (engine.EdgeID, uint64, error) {
	var res WriteResult
	err := c.do(ctx, http.MethodPost, APIPrefix+"/edges", CreateEdgeRequest{From: from, To: to, Label: label, Properties: Props(props)}, &res)
	return engine.EdgeID(res.ID), res.LSN, err
}

// DeleteEdge deletes edge id; it returns the commit LSN.
func (c *Client) DeleteEdge(ctx context.Context, id engine.EdgeID) (uint64, error) {
	var res WriteResult
	err := c.do(ctx, http.MethodDelete, fmt.Sprintf("%s/edges/%d", APIPrefix, id), nil, &res)
	return res.LSN, err
}

// Neighbors lists node id's edges in direction "out", "in" or "both"
// ("" is out), only those labelled label unless it is "".
func (c *Client) Neighbors(ctx context.Context, id engine.NodeID, direction, label string) ([]Neighbor, error) {
	q := url.Values{}
	if direction != "" {
		q.Set("direction", direction)
	}
	if label != "" {
		q.Set("label", label)
	}
	var res NeighborsResult
	err := c.do(ctx, http.MethodGet, fmt.Sprintf("%s/nodes/%d/neighbors?%s", APIPrefix, id, q.Encode()), nil, &res)
	return res.Neighbors, err
}

// NodesByLabel returns the nodes labelled label.
func (c *Client) NodesByLabel(ctx context.Context, label string) ([]engine.NodeID, error) {
	return c.query(ctx, url.Values{"label": {label}})
}

// NodesByProperty returns the nodes whose property key equals v.
func (c *Client) NodesByProperty(ctx context.Context, key string, v engine.PropertyValue) ([]engine.NodeID, error) {
	b, err := MarshalValue(v)
	if err != nil {
		return nil, err
	}
	return c.query(ctx, url.Values{"property": {key}, "value": {string(b)}})
}

// NodesByPropertyRange returns the nodes whose property key lies in
// [lo, hi] (int or float bounds of one kind), by index when one exists.
func (c *Client) NodesByPropertyRange(ctx context.Context, key string, lo, hi engine.PropertyValue) ([]engine.NodeID, error) {
	l, err := MarshalValue(lo)
	if err != nil {
		return nil, err
	}
	h, err := MarshalValue(hi)
	if err != nil {
		return nil, err
	}
	return c.query(ctx, url.Values{"property": {key}, "min": {string(l)}, "max": {string(h)}})
}

// NodesInRange returns the node ids from lo to hi, as the engine's
// NodesInRange.
func (c *Client) NodesInRange(ctx context.Context, lo, hi engine.NodeID) ([]engine.NodeID, error) {
	return c.query(ctx, url.Values{"from_id": {strconv.FormatUint(uint64(lo), 10)}, "to_id": {strconv.FormatUint(uint64(hi), 10)}})
}

func (c *Client) query(ctx context.Context, q url.Values) ([]engine.NodeID, error) {
	var res IDsResult
	err := c.do(ctx, http.MethodGet, APIPrefix+"/nodes?"+q.Encode(), nil, &res)
	return res.IDs, err
}

// Batch applies ops in one transaction, all or nothing; it returns the
// ids the operations created (0 for the others) and the commit LSN.
func (c *Client) Batch(ctx context.Context, ops []Op) (BatchResult, error) {
	var res BatchResult
	err := c.do(ctx, http.MethodPost, APIPrefix+"/batch", BatchRequest{Ops: ops}, &res)
	return res, err
}

// LogicalHash returns the instance's logical hash and the LSN it is of.
// It reads the whole database.
func (c *Client) LogicalHash(ctx context.Context) (HashResult, error) {
	var res HashResult
	err := c.do(ctx, http.MethodGet, APIPrefix+"/hash", nil, &res)
	return res, err
}
