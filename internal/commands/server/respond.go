package server

// respond.go: JSON responses, and engine errors as HTTP statuses.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/sombradb/sombra/cluster"
	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/replication"
)

// maxBody bounds a request body (a batch included).
const maxBody = 32 << 20

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeLSN answers a read or write with the LSN it reflects.
func writeLSN(w http.ResponseWriter, code int, lsn uint64, v any) {
	w.Header().Set(cluster.HeaderLSN, strconv.FormatUint(lsn, 10))
	writeJSON(w, code, v)
}

// decode reads a JSON body into v, refusing unknown fields so that a
// misspelt field is an error rather than silently ignored.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %w: %w", err, engine.ErrInvalid)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("request body: more than one JSON document: %w", engine.ErrInvalid)
	}
	return nil
}

// fail answers err with the status its class calls for. A write refused
// because this instance is not the primary answers 421 Misdirected
// Request with the primary's address, which cluster.Client follows.
func (s *Server) fail(w http.ResponseWriter, err error) {
	body := cluster.ErrorBody{Error: err.Error()}
	code := http.StatusInternalServerError
	var busy *engine.BusyError
	switch {
	// A fenced commit is not a failure of the request's content: another
	// node became primary first, and this commit is set aside with the
	// diverged file, so sending it to the new primary applies it once.
	case errors.Is(err, engine.ErrNotPrimary), errors.Is(err, replication.ErrFenced):
		code, body.Kind = http.StatusMisdirectedRequest, cluster.KindNotPrimary
		if s.node != nil {
			if st := s.node.Status(); st.Role != cluster.RolePrimary {
				body.Primary = st.PrimaryAddr
			}
		}
	case errors.Is(err, replication.ErrUnavailable):
		code, body.Kind = http.StatusServiceUnavailable, cluster.KindUnavailable
	case errors.Is(err, engine.ErrPermissionDenied):
		code, body.Kind = http.StatusForbidden, cluster.KindForbidden
	case errors.Is(err, engine.ErrNotFound):
		code, body.Kind = http.StatusNotFound, cluster.KindNotFound
	case errors.Is(err, engine.ErrInvalid):
		code, body.Kind = http.StatusBadRequest, cluster.KindInvalid
	case errors.As(err, &busy), errors.Is(err, engine.ErrBusy):
		code, body.Kind = http.StatusServiceUnavailable, cluster.KindBusy
		w.Header().Set("Retry-After", "1")
	default:
		body.Kind = cluster.KindInternal
		s.log.Error("request failed", "err", err)
	}
	writeJSON(w, code, body)
}
