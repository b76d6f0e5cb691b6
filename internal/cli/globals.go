package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
)

// Globals holds the flags every binary accepts.
type Globals struct {
	DB        string        // --db PATH
	JSON      bool          // --json: one JSON document on stdout
	Quiet     bool          // --quiet/-q: no human output on success
	NoColor   bool          // --no-color
	Wait      time.Duration // --wait: how long to retry when the database is locked
	LogLevel  string        // --log-level debug|info|warn|error
	LogFormat string        // --log-format text|json
	User      string        // --user: who the tool acts as under the stored access policy

	// ctx is the running command's context, cancelled by SIGINT/SIGTERM
	// (see Main); set when the command starts.
	ctx context.Context
}

// Context is the running command's context, which Main cancels on SIGINT
// or SIGTERM: pass it to every long engine operation (the ...Context
// calls). context.Background before the command starts.
func (g *Globals) Context() context.Context {
	if g.ctx == nil {
		return context.Background()
	}
	return g.ctx
}

// WithContext returns a copy of g whose Context is ctx.
func (g Globals) WithContext(ctx context.Context) Globals {
	g.ctx = ctx
	return g
}

// globalsOf maps a root command to the Globals its flags are bound to, so
// that started can hand the command's context to them.
var globalsOf sync.Map // *cobra.Command -> *Globals

// UserEnv is the environment variable that names the user the tools act as
// when --user is not given.
const UserEnv = "SOMBRA_USER"

// EffectiveUser is --user if given, else $SOMBRA_USER.
func (g *Globals) EffectiveUser() string {
	if g.User != "" {
		return g.User
	}
	return os.Getenv(UserEnv)
}

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
)

// AddGlobalFlags registers the shared flags as persistent flags of cmd (the
// root), so subcommands accept them too. Bad values fail flag parsing and so
// become usage errors (exit 2).
func AddGlobalFlags(cmd *cobra.Command, g *Globals) {
	globalsOf.Store(cmd, g)
	g.LogLevel, g.LogFormat = "warn", "text"
	f := cmd.PersistentFlags()
	f.StringVar(&g.DB, "db", g.DB, "database file `PATH`")
	f.BoolVar(&g.JSON, "json", false, "print the result as one JSON document on stdout (errors as JSON on stderr)")
	f.BoolVarP(&g.Quiet, "quiet", "q", false, "print nothing on success (errors are still printed)")
	f.BoolVar(&g.NoColor, "no-color", false, "disable colour (also off when NO_COLOR is set or stdout is not a terminal)")
	f.Var((*waitValue)(&g.Wait), "wait", "if the database is locked, retry for up to `DURATION` (e.g. 30s) instead of failing at once")
	f.StringVar(&g.User, "user", "", "act as `USER` under the access policy stored in the database (default $"+UserEnv+")")
	f.Var(&choiceValue{&g.LogLevel, logLevels}, "log-level", "log `level` on stderr: "+strings.Join(logLevels, "|"))
	f.Var(&choiceValue{&g.LogFormat, logFormats}, "log-format", "log `format` on stderr: "+strings.Join(logFormats, "|"))

	_ = cmd.RegisterFlagCompletionFunc("db", CompleteDatabaseFiles) // complete.go
	_ = cmd.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions(logLevels, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions(logFormats, cobra.ShellCompDirectiveNoFileComp))
}

// Color reports whether human output on s may use colour: only on a
// terminal, and neither --no-color nor NO_COLOR (https://no-color.org) set.
func (g *Globals) Color(s IOStreams) bool {
	return s.IsTTY && !g.NoColor && os.Getenv("NO_COLOR") == ""
}

// Logger returns a slog logger on s.ErrOut, so logs never mix with results
// on stdout.
func (g *Globals) Logger(s IOStreams) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.LogLevel)); err != nil {
		level = slog.LevelWarn
	}
	opts := &slog.HandlerOptions{Level: level}
	if g.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(s.ErrOut, opts))
	}
	return slog.New(slog.NewTextHandler(s.ErrOut, opts))
}

// choiceValue is a string flag restricted to a fixed set of values.
type choiceValue struct {
	p       *string
	choices []string
}

func (v *choiceValue) String() string { return *v.p }
func (v *choiceValue) Type() string   { return "string" }

func (v *choiceValue) Set(s string) error {
	if !slices.Contains(v.choices, s) {
		return fmt.Errorf("must be one of %s", strings.Join(v.choices, "|"))
	}
	*v.p = s
	return nil
}

// waitValue is --wait: a Duration (format.go), so "1d" works as in every
// other duration flag; its default prints as "0s".
type waitValue time.Duration

func (v *waitValue) String() string { return time.Duration(*v).String() }
func (v *waitValue) Type() string   { return "duration" }

func (v *waitValue) Set(s string) error {
	d, err := ParseDuration(s)
	if err != nil {
		return errNotDuration
	}
	*v = waitValue(d)
	return nil
}
