// Package logging sets up structured logging for programs embedding Sombra
// (the guide's logging::init_logging).
//
// A spec is a comma-separated list of tokens, in any order, each at most
// once:
//
//	level:   trace, debug, info (default), warn (or warning), error, off
//	format:  text (default) or json
//	output:  stderr (default), stdout, or file=PATH (appended to, created
//	         0644; PATH may not contain a comma)
//	source:  adds the source file and line to each record
//
// Examples: "info,json", "debug", "warn,text", "debug,json,file=/var/log/sombra.log".
// The empty spec means "info,text" on stderr.
//
// The engine logs to engine.Config.Logger; when that is not set, to the
// logger of the last InitLogging, and to nothing when
// neither was called (New alone does not reach the engine: pass its logger
// as Config.Logger). At the levels:
//
//	debug  transaction begin, commit (lsn, pages, duration) and rollback
//	info   open, close, checkpoints, cache resizes, group commit, cleared resource alerts
//	warn   operations slower than Config.SlowOperation (100ms), failed
//	       checkpoints, resource alerts (DB.EnableMemoryPressureMonitoring)
//	error  commit failures and detected corruption
package logging

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
)

// ErrInvalidSpec is returned (wrapped) for a spec that does not parse.
var ErrInvalidSpec = errors.New("invalid logging spec")

// LevelTrace is below debug; nothing in the engine logs at it today.
const LevelTrace = slog.LevelDebug - 4

// Spec is a parsed logging spec.
type Spec struct {
	Level     slog.Level
	Off       bool   // "off": discard everything
	Format    string // "text" or "json"
	File      string // "" for a standard stream
	Stdout    bool   // stdout rather than stderr (File empty)
	AddSource bool
}

var levels = map[string]slog.Level{
	"trace": LevelTrace, "debug": slog.LevelDebug, "info": slog.LevelInfo,
	"warn": slog.LevelWarn, "warning": slog.LevelWarn, "error": slog.LevelError,
}

// ParseSpec parses a spec (see the package documentation).
func ParseSpec(spec string) (Spec, error) {
	s := Spec{Level: slog.LevelInfo, Format: "text"}
	var haveLevel, haveFormat, haveOutput, haveSource bool
	bad := func(format string, args ...any) (Spec, error) {
		return Spec{}, fmt.Errorf("%w %q: %s", ErrInvalidSpec, spec, fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(spec) == "" {
		return s, nil
	}
	for raw := range strings.SplitSeq(spec, ",") {
		tok := strings.TrimSpace(raw)
		low := strings.ToLower(tok)
		switch {
		case tok == "":
			return bad("empty token")
		case strings.HasPrefix(low, "file="):
			if haveOutput {
				return bad("more than one output")
			}
			haveOutput = true
			s.File = strings.TrimSpace(tok[len("file="):])
			if s.File == "" {
				return bad("file= needs a path")
			}
		case low == "stderr" || low == "stdout":
			if haveOutput {
				return bad("more than one output")
			}
			haveOutput = true
			s.Stdout = low == "stdout"
		case low == "json" || low == "text":
			if haveFormat {
				return bad("more than one format")
			}
			haveFormat = true
			s.Format = low
		case low == "off":
			if haveLevel {
				return bad("more than one level")
			}
			haveLevel, s.Off = true, true
		case low == "source":
			if haveSource {
				return bad("source given twice")
			}
			haveSource, s.AddSource = true, true
		default:
			l, ok := levels[low]
			if !ok {
				return bad("unknown token %q (want a level: trace, debug, info, warn, error, off; a format: json, text; stderr, stdout, file=PATH or source)", tok)
			}
			if haveLevel {
				return bad("more than one level")
			}
			haveLevel, s.Level = true, l
		}
	}
	return s, nil
}

// String renders the spec in the form ParseSpec reads.
func (s Spec) String() string {
	var parts []string
	switch {
	case s.Off:
		parts = append(parts, "off")
	default:
		name := strings.ToLower(s.Level.String())
		for k, v := range levels {
			if v == s.Level && k != "warning" {
				name = k
			}
		}
		parts = append(parts, name)
	}
	parts = append(parts, s.Format)
	switch {
	case s.File != "":
		parts = append(parts, "file="+s.File)
	case s.Stdout:
		parts = append(parts, "stdout")
	}
	if s.AddSource {
		parts = append(parts, "source")
	}
	return strings.Join(parts, ",")
}

// Handler returns a handler for the spec writing to w (the spec's output
// is ignored).
func (s Spec) Handler(w io.Writer) slog.Handler {
	if s.Off {
		return slog.DiscardHandler
	}
	o := &slog.HandlerOptions{Level: s.Level, AddSource: s.AddSource, ReplaceAttr: levelNames}
	if s.Format == "json" {
		return slog.NewJSONHandler(w, o)
	}
	return slog.NewTextHandler(w, o)
}

// levelNames prints LevelTrace as "TRACE" rather than "DEBUG-4".
func levelNames(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.LevelKey {
		if l, ok := a.Value.Any().(slog.Level); ok && l == LevelTrace {
			a.Value = slog.StringValue("TRACE")
		}
	}
	return a
}

// New builds a logger from spec without making it the default. The closer
// closes the log file (a no-op for stderr and stdout).
func New(spec string) (*slog.Logger, io.Closer, error) {
	s, err := ParseSpec(spec)
	if err != nil {
		return nil, nil, err
	}
	var w io.Writer = os.Stderr
	var c io.Closer = nopCloser{}
	switch {
	case s.Off:
		w = io.Discard
	case s.File != "":
		f, err := os.OpenFile(s.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("log file: %w", err)
		}
		w, c = f, f
	case s.Stdout:
		w = os.Stdout
	}
	return slog.New(s.Handler(w)), c, nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

var (
	initMu     sync.Mutex
	initFile   io.Closer    // the file of the current default logger, if any
	initLogger *slog.Logger // the logger InitLogging installed, if any
)

// Default returns the logger the last InitLogging
// installed, or nil if neither was called. The engine logs to it when
// engine.Config.Logger is not set, so InitLogging alone is enough for an
// embedding program to see the engine's logs.
func Default() *slog.Logger {
	initMu.Lock()
	defer initMu.Unlock()
	return initLogger
}

// InitLogging builds a logger from spec and makes it slog's default (so
// the standard log package writes through it too). A log file it opens
// stays open while the logger is the default: a later InitLogging closes
// the previous one's file once the new logger is installed, so loggers
// still held elsewhere (an open database's Config.Logger) then lose their
// output. An invalid spec changes nothing.
func InitLogging(spec string) (*slog.Logger, error) {
	l, c, err := New(spec)
	if err != nil {
		return nil, err
	}
	initMu.Lock()
	defer initMu.Unlock()
	slog.SetDefault(l)
	initLogger = l
	if initFile != nil {
		initFile.Close()
	}
	initFile = c
	return l, nil
}
