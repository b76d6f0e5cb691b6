// Package server is sombra-server: one database served over HTTP/JSON,
// standalone or as a member of a replicated set (engine/replication over
// NATS JetStream). The protocol's documents are in package cluster, whose
// Client and LoadBalancer speak to it.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/sombradb/sombra/cluster"
	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/replication"
	"github.com/sombradb/sombra/internal/cli"
)

// Options is everything sombra-server needs.
type Options struct {
	IO      cli.IOStreams
	Globals cli.Globals

	Listen    string // --listen host:port
	Advertise string // --advertise: the address clients are sent to
	Create    bool   // --create: create the database when missing (standalone)
	MaxLag    time.Duration

	TokenFile string // --token-file
	TLSCert   string // --tls-cert
	TLSKey    string // --tls-key

	Replicate        string // --replicate nats://...
	Name             string // --name: the replicated set
	Node             string // --node
	Role             string // --role primary|replica
	Mode             string // --mode async|sync
	Failover         bool
	LeaseTTL         time.Duration
	SyncTimeout      time.Duration
	SnapshotInterval time.Duration
	StartTimeout     time.Duration

	// Listening, if set, receives the bound address as soon as requests
	// are answered (the database may still be opening); Ready receives it
	// once the database is open. Tests listening on port 0 learn it here.
	Listening, Ready func(addr string)
}

const long = `Serve one Sombra database over HTTP/JSON: node, edge and property reads and
writes, neighbours, range queries, batches of operations in one
transaction, health, readiness, Prometheus metrics and replication status.

Alone (no --replicate) the instance reads and writes its file. With
--replicate nats://HOST:PORT it is a member of a replicated set named
--name (default: the database file's name): the --role primary instance
publishes every commit to a NATS JetStream stream, --role replica
instances apply it and refuse writes with the primary's --advertise
address. With --failover (default on) a replica takes over when the
primary's lease (--lease-ttl) lapses; a deposed primary that comes back
cannot write. --mode sync makes a write's response wait until JetStream
acknowledged it, so no acknowledged write is lost with the primary. A sync
write answered 503 "unavailable" after it began may be committed on the
primary and published once JetStream is back: read before repeating it.

SECURITY

With --token-file every request except /healthz and /readyz needs
"Authorization: Bearer TOKEN". The file holds one "TOKEN USER" pair a
line (# starts a comment); a request acts as that USER under the access
policy stored in the database (roles and permissions, see sombra-info
and the engine's SetAccessPolicy), so a token of a read-only user cannot
write. Without --token-file requests act as --user (default $SOMBRA_USER).
--tls-cert and --tls-key serve HTTPS. Without a token file and without
TLS the server refuses to listen anywhere but on loopback.

ENDPOINTS (JSON; errors are {"error", "kind", "primary"})

    GET    /v1/nodes/{id}                   node {id, labels, properties}
    POST   /v1/nodes                        {labels, properties} -> {id, lsn}
    PATCH  /v1/nodes/{id}/properties        {set, remove} -> {lsn}
    DELETE /v1/nodes/{id}                   -> {lsn} (its edges too)
    GET    /v1/nodes/{id}/neighbors         ?direction=out|in|both&label=L
    GET    /v1/nodes                        ?label=L | ?property=P&value=V |
                                            ?property=P&min=A&max=B (range,
                                            int or float; by index if one
                                            exists) | ?from_id=A&to_id=B
    POST   /v1/edges                        {from, to, label, properties}
    GET    /v1/edges/{id}, DELETE /v1/edges/{id}
    POST   /v1/batch                        {ops: [...]}: all or nothing
    GET    /v1/status                       role, applied_lsn, lag, primary
    GET    /v1/hash                         {hash, lsn}: the logical hash
    GET    /healthz                         200 while the process runs
    GET    /readyz                          200 when the database is open and
                                            a replica lags less than --max-lag
    GET    /metrics                         Prometheus text

Property values are JSON: null, booleans, strings and integers as
themselves, floats with a fraction or exponent (1.0), bytes as
{"bytes": BASE64}. Every write answers with the commit LSN (also in the
X-Sombra-LSN header); a read with "X-Sombra-Min-LSN: N" waits until the
instance has applied LSN N (read your writes on a replica). A write sent
to a replica answers 421 with kind "not_primary" and the primary's
address in "primary".

SIGINT or SIGTERM stops the server gracefully: running requests finish,
the database is closed, a primary hands back its lease, and the exit
status is 0. While a replicated node runs, NAME.db-replication holds its
role and lag for sombra-info and sombra-health-check.

JSON OUTPUT (--json, schema_version 2)

On start the server prints where it listens; with --json one document:

    schema_version   always 2
    listen           the address bound (host:port; the port chosen when 0)
    url              http://listen or https://listen
    role             standalone, primary or replica
    node             the node's name in the replicated set (if any)

The API's own documents are not versioned by schema_version but by the
/v1 path prefix.

EXIT STATUS

    0 stopped by SIGINT/SIGTERM, 1 failed (cannot listen, NATS, I/O),
    2 usage error, 3 database locked by another process.`

const example = `  sombra-server --db /data/graph.db --create
  sombra-server --db /data/graph.db --listen 0.0.0.0:8080 --token-file /etc/sombra/tokens
  # a replicated set on one machine (nats-server -js running on 4222):
  sombra-server --db a.db --listen 127.0.0.1:8081 --replicate nats://127.0.0.1:4222 --name graph --node a --role primary --mode sync
  sombra-server --db b.db --listen 127.0.0.1:8082 --replicate nats://127.0.0.1:4222 --name graph --node b
  curl -s localhost:8081/v1/status | jq .role`

// NewCommand returns the sombra-server root command on streams.
func NewCommand(streams cli.IOStreams) *cobra.Command {
	return NewCmd(&Options{IO: streams}, nil)
}

// NewCmd builds the command on opts; runF (nil: Run) does the work.
func NewCmd(opts *Options, runF func(context.Context, *Options) error) *cobra.Command {
	cmd := cli.NewRoot("sombra-server", "Serve a database over HTTP/JSON, alone or replicated over NATS JetStream",
		long, example, &opts.Globals, opts.IO)
	cmd.Args = cobra.NoArgs
	f := cmd.Flags()
	opts.Role, opts.Mode = "replica", "async" // before the flags, so --help shows them
	f.StringVar(&opts.Listen, "listen", "127.0.0.1:8080", "listen on `host:port` (no host: 127.0.0.1; port 0: any free port)")
	f.StringVar(&opts.Advertise, "advertise", "", "`address` clients are sent to for writes (default: the listen address)")
	f.BoolVar(&opts.Create, "create", false, "create the database file if it does not exist")
	f.DurationVar(&opts.MaxLag, "max-lag", 5*time.Second, "/readyz fails on a replica lagging more than `duration`")
	f.StringVar(&opts.TokenFile, "token-file", "", "bearer tokens: a `file` of \"TOKEN USER\" lines")
	f.StringVar(&opts.TLSCert, "tls-cert", "", "serve HTTPS with this certificate `file` (PEM; needs --tls-key)")
	f.StringVar(&opts.TLSKey, "tls-key", "", "private key `file` of --tls-cert (PEM)")
	f.StringVar(&opts.Replicate, "replicate", "", "replicate over NATS JetStream at `url` (nats://host:port, comma separated)")
	f.StringVar(&opts.Name, "name", "", "`name` of the replicated set (default: the database file's base name)")
	f.StringVar(&opts.Node, "node", "", "this instance's unique `name` in the set (default: the advertised address)")
	f.Var(cli.Choice(&opts.Role, "replica", "primary"), "role", "start as `role` replica|primary")
	f.Var(cli.Choice(&opts.Mode, "async", "sync"), "mode", "`mode` async (commit after the local fsync) or sync (after JetStream's acknowledgement)")
	f.BoolVar(&opts.Failover, "failover", true, "a replica takes the primary's lease when it lapses")
	f.DurationVar(&opts.LeaseTTL, "lease-ttl", 10*time.Second, "primary lease lifetime without renewal (the same in the whole set)")
	f.DurationVar(&opts.SyncTimeout, "sync-timeout", 5*time.Second, "in sync mode, how long a write waits for JetStream")
	f.DurationVar(&opts.SnapshotInterval, "snapshot-interval", 10*time.Minute, "the primary stores a snapshot for new replicas this often (negative: only when none exists)")
	f.DurationVar(&opts.StartTimeout, "start-timeout", 30*time.Second, "how long to wait at start for a snapshot (new replica) or the lease (primary)")
	// Requests share one connection and take turns at its writer lock, so
	// the server waits for it by default rather than failing at once.
	if w := cmd.PersistentFlags().Lookup("wait"); w != nil {
		w.Usage, w.DefValue = "how long a write waits up to `DURATION` for the database's writer lock (requests take turns)", "5s"
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		if err := checkFlags(c, opts); err != nil {
			return err
		}
		if runF != nil {
			return runF(c.Context(), opts)
		}
		return Run(c.Context(), opts)
	}
	return cmd
}

// checkFlags refuses flag combinations that mean nothing.
func checkFlags(c *cobra.Command, opts *Options) error {
	f := c.Flags()
	if _, err := opts.Globals.DBPath(); err != nil {
		return err
	}
	if (opts.TLSCert == "") != (opts.TLSKey == "") {
		return cli.Usagef("--tls-cert and --tls-key go together")
	}
	if opts.Replicate == "" {
		for _, name := range []string{"name", "node", "role", "mode", "failover", "lease-ttl", "sync-timeout", "snapshot-interval", "start-timeout"} {
			if f.Changed(name) {
				return cli.Usagef("--%s needs --replicate", name)
			}
		}
	} else if opts.Create {
		return cli.Usagef("--create does not apply to --replicate: a primary creates its database, a replica restores it from the primary's snapshot")
	}
	if opts.MaxLag <= 0 {
		return cli.Usagef("--max-lag must be positive, got %s", opts.MaxLag)
	}
	return nil
}

// Run serves until ctx is cancelled (SIGINT/SIGTERM), then shuts down:
// running requests finish, the database is closed (a primary hands its
// lease back) and Run returns nil.
func Run(ctx context.Context, opts *Options) error {
	log := opts.Globals.Logger(opts.IO)
	tokens, err := loadTokens(opts.TokenFile)
	if err != nil {
		return err
	}
	addr, err := listenAddr(opts.Listen, len(tokens) > 0 || opts.TLSCert != "")
	if err != nil {
		return err
	}
	// Listen first: the advertised address (and so the node's default
	// name) comes from the port actually bound.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	defer ln.Close()
	tlsConf, err := tlsConfig(opts.TLSCert, opts.TLSKey)
	if err != nil {
		return err
	}
	bound := ln.Addr().String()
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	advertise := opts.Advertise
	if advertise == "" {
		if opts.Replicate != "" && ln.Addr().(*net.TCPAddr).IP.IsUnspecified() {
			return cli.Usagef("--listen %s listens on every interface: give --advertise, the address clients are sent to for writes", opts.Listen)
		}
		advertise = scheme + "://" + bound
	}
	var ready atomic.Pointer[http.Handler]
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsConf, Handler: gate(&ready),
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	if opts.Listening != nil {
		opts.Listening(bound)
	}
	s, err := open(opts, advertise, log)
	if err != nil {
		_ = srv.Close()
		return err
	}
	s.tokens = tokens
	h := s.Handler()
	ready.Store(&h)
	st := s.status()
	if err := announce(opts, bound, scheme+"://"+bound, st); err != nil {
		log.Warn("print the start line", "err", err)
	}
	if opts.Ready != nil {
		opts.Ready(bound)
	}
	log.Info("serving", "db", opts.Globals.DB, "listen", bound, "role", st.Role)
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown: requests still running were cut off", "err", err)
	}
	closeErr := s.db.Close()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", bound, serveErr)
	}
	if closeErr != nil {
		return fmt.Errorf("close %s: %w", opts.Globals.DB, closeErr)
	}
	log.Info("stopped", "db", opts.Globals.DB)
	return nil // a requested stop is a success, not an interruption
}

// gate serves at once: while the database opens (a new replica waits for
// the primary's snapshot) /healthz answers and the rest says why not yet,
// instead of connections hanging in the listen queue; then ready's
// handler serves everything.
func gate(ready *atomic.Pointer[http.Handler]) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := ready.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		if r.URL.Path == "/healthz" {
			writeJSON(w, http.StatusOK, map[string]string{"status": "starting"})
			return
		}
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, cluster.ErrorBody{Error: "starting: the database is being opened", Kind: cluster.KindUnavailable})
	})
}

// startDoc is what the server prints when it starts.
type startDoc struct {
	SchemaVersion int    `json:"schema_version"`
	Listen        string `json:"listen"`
	URL           string `json:"url"`
	Role          string `json:"role"`
	Node          string `json:"node,omitempty"`
}

func announce(opts *Options, bound, url string, st statusView) error {
	p := cli.NewPrinter(opts.IO, &opts.Globals)
	doc := startDoc{SchemaVersion: cli.SchemaVersion, Listen: bound, URL: url, Role: st.Role, Node: st.Node}
	return p.Result(doc, func(h *cli.Human) {
		h.Line("sombra-server: serving %s at %s as %s", opts.Globals.DB, url, st.Role)
	})
}

// open opens the database, with replication when asked for.
func open(opts *Options, advertise string, log *slog.Logger) (*Server, error) {
	cfg := engine.Config{BusyTimeout: opts.Globals.BusyTimeout(5 * time.Second), Logger: log}
	path := opts.Globals.DB
	var node *replication.Node
	if opts.Replicate != "" {
		rcfg, err := replicationConfig(opts, advertise, log)
		if err != nil {
			return nil, err
		}
		if node, err = replication.New(rcfg); err != nil {
			return nil, cli.Usagef("%w", err)
		}
		cfg.Replication = node
	} else if !opts.Create {
		if err := cli.CheckDBFile(path); err != nil {
			return nil, fmt.Errorf("%w (--create makes a new one)", err)
		}
	}
	db, err := engine.OpenWithConfig(path, cfg)
	if err != nil {
		return nil, err
	}
	return &Server{db: db, node: node, addr: advertise, user: opts.Globals.EffectiveUser(), maxLag: opts.MaxLag, log: log}, nil
}
