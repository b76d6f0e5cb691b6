package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/spf13/cobra"
)

func TestExitCode(t *testing.T) {
	corrupt := &engine.CorruptionError{Path: "a.db", Page: 7, Offset: -1, Reason: "bad checksum"}
	busy := &engine.BusyError{Path: "a.db", What: engine.LockWriter, PID: 42}
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, ExitOK},
		{"plain", errors.New("disk full"), ExitFailed},
		{"usage", Usagef("need --db"), ExitUsage},
		{"wrapped usage", fmt.Errorf("x: %w", Usagef("bad")), ExitUsage},
		{"busy sentinel", engine.ErrBusy, ExitBusy},
		{"busy type wrapped", fmt.Errorf("open: %w", busy), ExitBusy},
		{"corrupt sentinel", engine.ErrCorrupt, ExitCorrupt},
		{"corrupt type wrapped twice", fmt.Errorf("verify: %w", fmt.Errorf("page: %w", corrupt)), ExitCorrupt},
		{"corrupt outranks busy", errors.Join(busy, corrupt), ExitCorrupt},
		{"not a database", fmt.Errorf("x.db: %w", engine.ErrNotADatabase), ExitFailed},
		{"version", fmt.Errorf("x.db: %w", engine.ErrVersion), ExitFailed},
		{"exit error", &ExitError{Code: 4}, 4},
		{"exit error wins over its cause", &ExitError{Code: 1, Err: engine.ErrBusy}, 1},
		{"wrapped exit error", fmt.Errorf("ctx: %w", &ExitError{Code: 3}), 3},
		{"interrupted", fmt.Errorf("backup: interrupted: %w", context.Canceled), ExitInterrupted},
		{"interrupted outranks a chosen code", &ExitError{Code: 4, Err: context.Canceled}, ExitInterrupted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExitCode(tt.err); got != tt.want {
				t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestHealthExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, HealthOK},
		{&ExitError{Code: HealthDegraded}, HealthDegraded},
		{fmt.Errorf("x: %w", engine.ErrCorrupt), HealthUnhealthy},
		{engine.ErrBusy, HealthUnknown},
		{Usagef("bad flag"), HealthUnknown},
		{errors.New("io"), HealthUnknown},
	}
	for _, tt := range tests {
		if got := healthExitCode(tt.err); got != tt.want {
			t.Errorf("healthExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestExitErrorMessage(t *testing.T) {
	if got := (&ExitError{Code: 4}).Error(); got != "exit status 4" {
		t.Errorf("got %q", got)
	}
	inner := errors.New("boom")
	e := &ExitError{Code: 1, Err: inner}
	if e.Error() != "boom" || !errors.Is(e, inner) {
		t.Errorf("ExitError does not wrap its cause: %q", e.Error())
	}
}

// TestRunInterrupted: a command whose context was cancelled (what SIGINT
// does in Main) exits 130 with one error line, under --json of kind
// "interrupted", even when its error does not say it was interrupted.
func TestRunInterrupted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		health bool
		err    error
	}{
		{"says so", false, fmt.Errorf("backup x: %w", context.Canceled)},
		{"does not say so", false, errors.New("write x: broken pipe")},
		{"health-check", true, fmt.Errorf("check: %w", context.Canceled)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, json := range []bool{false, true} {
				s, _, _, errOut := Test()
				g := &Globals{}
				root := NewRoot("sombra-demo", "demo", "", "", g, s)
				if tc.health {
					UseHealthExitCodes(root)
				}
				root.RunE = func(c *cobra.Command, _ []string) error {
					<-g.Context().Done() // the command sees the cancelled context
					return tc.err
				}
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				args := []string{}
				if json {
					args = append(args, "--json")
				}
				if code := RunContext(ctx, root, args); code != ExitInterrupted {
					t.Errorf("json=%v: exit %d, want %d", json, code, ExitInterrupted)
				}
				out := errOut.String()
				if strings.Count(out, "\n") != 1 || (json && !strings.Contains(out, `"kind":"interrupted"`)) {
					t.Errorf("json=%v: stderr %q", json, out)
				}
			}
		})
	}
}
