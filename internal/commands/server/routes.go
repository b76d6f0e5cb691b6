package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sombradb/sombra/cluster"
	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/replication"
)

// Server is one served database: its connection, its replication node
// (nil when standalone) and who may use it.
type Server struct {
	db     *engine.DB
	node   *replication.Node
	addr   string            // the advertised address
	tokens map[string]string // bearer token -> user; nil: no authentication
	user   string            // the user requests act as without tokens
	maxLag time.Duration
	log    *slog.Logger

	metricsMu   sync.Mutex
	metricsPrev engine.DatabaseMetrics
}

// maxMinLSNWait bounds how long a read waits for its MinLSN, whatever the
// client's deadline: a replica that far behind should not hold requests.
const maxMinLSNWait = 10 * time.Second

// Handler routes the API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /metrics", s.authed(s.metrics))
	mux.HandleFunc("GET /v1/status", s.authed(s.getStatus))
	mux.HandleFunc("GET /v1/nodes/{id}", s.read(s.getNode))
	mux.HandleFunc("GET /v1/nodes/{id}/neighbors", s.read(s.neighbors))
	mux.HandleFunc("GET /v1/nodes", s.read(s.queryNodes))
	mux.HandleFunc("GET /v1/edges/{id}", s.read(s.getEdge))
	mux.HandleFunc("GET /v1/hash", s.read(s.logicalHash))
	mux.HandleFunc("POST /v1/nodes", s.authed(s.createNode))
	mux.HandleFunc("PATCH /v1/nodes/{id}/properties", s.authed(s.updateProperties))
	mux.HandleFunc("DELETE /v1/nodes/{id}", s.authed(s.deleteNode))
	mux.HandleFunc("POST /v1/edges", s.authed(s.createEdge))
	mux.HandleFunc("DELETE /v1/edges/{id}", s.authed(s.deleteEdge))
	mux.HandleFunc("POST /v1/batch", s.authed(s.batch))
	return s.logged(mux)
}

// statusRecorder keeps the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// logged logs every request at debug level (--log-level debug) and the
// server's own failures (5xx other than "unavailable") as warnings.
func (s *Server) logged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		level := slog.LevelDebug
		if rec.code == http.StatusInternalServerError {
			level = slog.LevelWarn
		}
		s.log.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path, "status", rec.code,
			"duration_ms", float64(time.Since(start).Microseconds())/1000, "remote", r.RemoteAddr)
	})
}

type userHandler func(w http.ResponseWriter, r *http.Request, user string)

func (s *Server) authed(h userHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if user, ok := s.authenticate(w, r); ok {
			h(w, r, user)
		}
	}
}

// read wraps a read: authentication, then the wait for the client's
// X-Sombra-Min-LSN (read your writes).
func (s *Server) read(h userHandler) http.HandlerFunc {
	return s.authed(func(w http.ResponseWriter, r *http.Request, user string) {
		if v := r.Header.Get(cluster.HeaderMinLSN); v != "" {
			lsn, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				s.fail(w, fmt.Errorf("%s %q: %w", cluster.HeaderMinLSN, v, engine.ErrInvalid))
				return
			}
			if err := s.waitApplied(r.Context(), lsn); err != nil {
				s.fail(w, err)
				return
			}
		}
		h(w, r, user)
	})
}

func (s *Server) waitApplied(ctx context.Context, lsn uint64) error {
	ctx, cancel := context.WithTimeout(ctx, maxMinLSNWait)
	defer cancel()
	if s.node != nil {
		if err := s.node.WaitApplied(ctx, lsn); err != nil {
			return fmt.Errorf("this instance has not applied LSN %d: %w: %w", lsn, err, replication.ErrUnavailable)
		}
		return nil
	}
	last, err := s.db.LastLSN()
	if err != nil {
		return err
	}
	if last < lsn { // standalone: nothing more will arrive
		return fmt.Errorf("LSN %d is past this database's last LSN %d: %w", lsn, last, engine.ErrInvalid)
	}
	return nil
}

// update runs fn in one write transaction as user and returns the commit
// LSN.
func (s *Server) update(user string, fn func(*engine.Tx) error) (uint64, error) {
	tx, err := s.db.BeginTransactionAs(user)
	if err != nil {
		return 0, err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return tx.CommitLSN(), nil
}

// view runs fn in a read transaction as user and returns the LSN it saw.
func (s *Server) view(user string, fn func(*engine.Tx) error) (uint64, error) {
	var lsn uint64
	err := s.db.ViewAs(user, func(tx *engine.Tx) error {
		lsn = tx.LSN()
		return fn(tx)
	})
	return lsn, err
}

func pathID(r *http.Request) (uint64, error) {
	v := r.PathValue("id")
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("id %q: want a positive integer: %w", v, engine.ErrInvalid)
	}
	return id, nil
}
