package cluster

import (
	"errors"
	"fmt"

	"github.com/sombradb/sombra/engine"
)

// Errors. An *Error from a server matches the sentinel of its kind, and
// the engine's where one exists (ErrNotPrimary is engine.ErrNotPrimary,
// ErrNotFound engine.ErrNotFound, ...), so code written against the
// embedded engine tests errors the same way over HTTP.
var (
	// ErrNotPrimary: a write reached an instance that is not the
	// primary; the *Error's Primary names the one that is, when known.
	ErrNotPrimary = engine.ErrNotPrimary
	// ErrNotFound: no such node or edge.
	ErrNotFound = engine.ErrNotFound
	// ErrInvalid: the request was malformed or refused as invalid.
	ErrInvalid = engine.ErrInvalid
	// ErrPermissionDenied: the token's user lacks the permission.
	ErrPermissionDenied = engine.ErrPermissionDenied
	// ErrBusy: the database was locked; retry.
	ErrBusy = engine.ErrBusy
	// ErrUnauthorized: missing or unknown bearer token.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrUnavailable: the instance could not serve the request now
	// (replication unavailable in sync mode, a replica behind MinLSN).
	ErrUnavailable = errors.New("unavailable")
	// ErrUnreachable: the instance did not answer (connection refused,
	// timeout).
	ErrUnreachable = errors.New("instance unreachable")
	// ErrNoInstance: the load balancer found no instance able to serve.
	ErrNoInstance = errors.New("no instance available")
)

// Error is an error answer of a server.
type Error struct {
	Addr    string // the instance that answered
	Status  int    // HTTP status
	Kind    string // ErrorBody.Kind
	Message string
	Primary string // on not_primary: the primary's address, if known
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: %s", e.Addr, e.Message)
	if e.Primary != "" {
		msg += " (primary: " + e.Primary + ")"
	}
	return msg
}

// Is matches the sentinel of the error's kind.
func (e *Error) Is(target error) bool {
	switch e.Kind {
	case KindNotPrimary:
		return target == ErrNotPrimary
	case KindNotFound:
		return target == ErrNotFound
	case KindInvalid:
		return target == ErrInvalid
	case KindForbidden:
		return target == ErrPermissionDenied
	case KindBusy:
		return target == ErrBusy
	case KindUnauthorized:
		return target == ErrUnauthorized
	case KindUnavailable:
		return target == ErrUnavailable
	}
	return false
}

// PrimaryOf returns the primary's address an ErrNotPrimary error carries.
func PrimaryOf(err error) (string, bool) {
	var e *Error
	if errors.As(err, &e) && e.Kind == KindNotPrimary && e.Primary != "" {
		return e.Primary, true
	}
	return "", false
}
