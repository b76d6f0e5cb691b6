package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/sombradb/sombra/engine"
)

// Exit codes shared by all binaries (DESIGN.md, "CLI conventions").
const (
	ExitOK      = 0 // success
	ExitFailed  = 1 // operation failed: I/O, internal, not a database, wrong version
	ExitUsage   = 2 // bad flags or arguments
	ExitBusy    = 3 // database busy or locked; retry later
	ExitCorrupt = 4 // corruption or integrity problems found
	// ExitInterrupted: stopped by SIGINT or SIGTERM (the shell's 128+2).
	// The tool removed its temporary files and left the database and
	// every earlier output as they were. sombra-health-check uses it too.
	ExitInterrupted = 130
)

// Exit codes of sombra-health-check, which follows the monitoring-plugin
// (Nagios) convention instead; see UseHealthExitCodes.
const (
	HealthOK        = 0
	HealthDegraded  = 1
	HealthUnhealthy = 2
	HealthUnknown   = 3 // could not check: usage error, locked, I/O, ...
)

// UsageError marks a mistake in how the tool was invoked (exit code 2).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError; %w wraps as in fmt.Errorf.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ExitError lets a command choose its exit code. With a nil Err nothing is
// printed: use that when the command has already reported the problem in
// its result (e.g. a verify that found corruption returns
// &ExitError{Code: ExitCorrupt} after printing the issues).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// silent reports whether err asks for no error output.
func silent(err error) bool {
	var ee *ExitError
	return errors.As(err, &ee) && ee.Err == nil
}

// ExitCode maps an error returned by a command to the process exit code.
// Corruption outranks busy so that a tool which found corruption never
// reports a mere retry-later.
func ExitCode(err error) int {
	var (
		ee *ExitError
		ue *UsageError
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, context.Canceled):
		return ExitInterrupted // outranks the code a command chose
	case errors.As(err, &ee):
		return ee.Code
	case errors.As(err, &ue):
		return ExitUsage
	case errors.Is(err, engine.ErrCorrupt):
		return ExitCorrupt
	case errors.Is(err, engine.ErrBusy):
		return ExitBusy
	default:
		return ExitFailed
	}
}

// healthExitCode is ExitCode for sombra-health-check: whatever stopped the
// check from running is "unknown", except corruption, which is "unhealthy".
func healthExitCode(err error) int {
	var ee *ExitError
	switch {
	case err == nil:
		return HealthOK
	case errors.Is(err, context.Canceled):
		return ExitInterrupted // outranks the code a command chose
	case errors.As(err, &ee):
		return ee.Code
	case errors.Is(err, engine.ErrCorrupt):
		return HealthUnhealthy
	default:
		return HealthUnknown
	}
}
