package cli

import (
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
	KindFailed       = "failed"
)

// ErrorKind names the class of err for scripts reading JSON errors.
func ErrorKind(err error) string {
	var ue *UsageError
	switch {
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
	default:
		return KindFailed
	}
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
	msg := oneLine(err.Error())
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
	doc.SchemaVersion = SchemaVersion
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
