package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sombradb/sombra/engine"
)

// Error kinds reported in JSON errors. Like JSON field names they are API.
const (
	KindUsage        = "usage"
	KindBusy         = "busy"
	KindCorrupt      = "corrupt"
	KindNotADatabase = "not_a_database"
	KindVersion      = "version"
	KindNotFound     = "not_found"
	KindExists       = "exists"
	KindDenied       = "permission_denied"
	KindFailed       = "failed"
	KindInterrupted  = "interrupted"
)

// ErrorKind names the class of err for scripts reading JSON errors.
func ErrorKind(err error) string {
	var ue *UsageError
	switch {
	case errors.Is(err, context.Canceled):
		return KindInterrupted
	case errors.As(err, &ue):
		return KindUsage
	case errors.Is(err, engine.ErrCorrupt):
		return KindCorrupt
	case errors.Is(err, engine.ErrBusy):
		return KindBusy
	case errors.Is(err, engine.ErrNotADatabase):
		return KindNotADatabase
	case errors.Is(err, engine.ErrVersion):
		return KindVersion
	case errors.Is(err, engine.ErrNotFound):
		return KindNotFound
	case errors.Is(err, engine.ErrExists):
		return KindExists
	case errors.Is(err, engine.ErrPermissionDenied):
		return KindDenied
	default:
		return KindFailed
	}
}

// HintError is an error with the operator's next step appended in
// parentheses. The engine's errors say what went wrong in the API's words
// and never name a tool or a flag; the command that classifies an error
// adds what to type next in its own.
type HintError struct {
	Err  error
	Hint string
}

func (e *HintError) Error() string { return e.Err.Error() + " (" + e.Hint + ")" }
func (e *HintError) Unwrap() error { return e.Err }

// WithHint returns err with hint appended (nil for a nil err).
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &HintError{Err: err, Hint: hint}
}

// jsonError is the document printed on stderr under --json.
type jsonError struct {
	SchemaVersion int `json:"schema_version"`
	Error         struct {
		Message string `json:"message"`
		Code    int    `json:"code"`
		Kind    string `json:"kind"`
	} `json:"error"`
}

// PrintError reports err on s.ErrOut: "tool: message" for a person, or one
// JSON object per line under --json. It prints nothing for nil or for an
// ExitError without an inner error (the command has reported already).
func PrintError(s IOStreams, jsonMode bool, tool string, err error) {
	printError(s, jsonMode, tool, tool, err)
}

// printError is PrintError with a usage error's hint pointing at the help
// of helpFor (the subcommand that failed, e.g. "sombra-backup list").
func printError(s IOStreams, jsonMode bool, tool, helpFor string, err error) {
	if err == nil || silent(err) {
		return
	}
	msg := Message(err)
	if !jsonMode {
		if ErrorKind(err) == KindUsage {
			// Say what to try next, on the same line so scripts that log
			// stderr keep one line per failure.
			msg += fmt.Sprintf(" (see '%s --help')", helpFor)
		}
		fmt.Fprintf(s.ErrOut, "%s: %s\n", tool, msg)
		return
	}
	var doc jsonError
	doc.SchemaVersion = StableSchemaVersion
	doc.Error.Message = msg
	doc.Error.Code = ExitCode(err)
	doc.Error.Kind = ErrorKind(err)
	b, _ := json.Marshal(doc) // cannot fail: strings and ints only
	fmt.Fprintf(s.ErrOut, "%s\n", b)
}

// oneLine folds a multi-line message (errors.Join, wrapped tool output) onto
// one line so every failure is exactly one line in a log.
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// Message is the one wording of err that every tool prints: one line, and
// each part said once. Errors are wrapped on their way up by layers that
// each add the file they were working on ("open d.db: open d.db:
// permission denied", "info d.db: d.db: corrupt page 1"); here a part that
// repeats the one before it, or that is only a path an earlier part
// already named, is dropped.
func Message(err error) string {
	parts := strings.Split(oneLine(err.Error()), ": ")
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		if len(out) > 0 && (p == out[len(out)-1] || (isPathLike(p) && namedIn(out, p))) {
			continue
		}
		out = append(out, p)
	}
	// "open d.db: permission denied" says what "d.db: permission denied"
	// says, in the words of one tool but not the others.
	if len(out) > 1 {
		if rest, ok := strings.CutPrefix(out[0], "open "); ok && isPathLike(rest) {
			out[0] = rest
		}
	}
	return strings.Join(out, ": ")
}

// isPathLike reports whether part is a bare file name or path (no spaces).
func isPathLike(part string) bool {
	return part != "" && !strings.ContainsAny(part, " \t") && (strings.ContainsAny(part, "/.") || strings.HasSuffix(part, "db"))
}

// namedIn reports whether path appears as a word of one of parts.
func namedIn(parts []string, path string) bool {
	for _, p := range parts {
		for _, w := range strings.Fields(p) {
			if w == path {
				return true
			}
		}
	}
	return false
}
