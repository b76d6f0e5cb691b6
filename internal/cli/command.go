package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sombradb/sombra/engine"
	"github.com/spf13/cobra"
)

// Annotation keys on the root command.
const (
	annotHealthCodes = "sombra.cli/health-exit-codes"
	annotRunMarked   = "sombra.cli/run-marked"
)

// NewRoot returns a root command wired to streams with the global flags
// bound to g. The caller sets Args and RunE and adds subcommands. Do the
// work in RunE, not in a PreRun hook: Run treats an untyped error that
// arrives before any RunE starts as a usage error.
func NewRoot(name, short, long, example string, g *Globals, streams IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     name,
		Short:   short,
		Long:    long,
		Example: example,
		Version: Version,
		// Run prints errors once, in the right format, and a usage dump
		// after every failure would bury the message.
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.SetIn(streams.In)
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	cmd.SetVersionTemplate("{{sombraVersion .}}") // version.go
	setUsageTemplate(cmd)                         // usage.go: bool flags shown as --force
	// Declared here so cobra does not also claim -v, which commands may
	// want for --verbose; cobra still handles --version itself.
	cmd.Flags().Bool("version", false, "print the version, commit, build date and Go version (with --json: as JSON) and exit")
	AddGlobalFlags(cmd, g)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &UsageError{Err: err}
	})
	return cmd
}

// UseHealthExitCodes switches root to the monitoring-plugin exit codes of
// sombra-health-check: an ExitError keeps its code, corruption is 2
// (unhealthy) and every other error, usage errors included, is 3 (unknown).
func UseHealthExitCodes(root *cobra.Command) {
	annotate(root, annotHealthCodes)
}

// Main runs the command built on the process's streams with os.Args, prints
// any error and returns the exit code. SIGINT and SIGTERM cancel the
// command's context (cmd.Context()), which every long operation takes: the
// command stops within a second, removes its temporary files and exits
// ExitInterrupted (130). Further signals while it cleans up are caught
// too, so a second Ctrl-C cannot leave a half-removed temporary file.
// main.go is just: os.Exit(cli.Main(info.NewCommand)).
func Main(build func(IOStreams) *cobra.Command) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	limitHeap()
	cmd := build(System())
	if err := useKeyFromEnv(); err != nil {
		PrintError(System(), false, cmd.Name(), err)
		return ExitUsage
	}
	return run(ctx, cmd, os.Args[1:])
}

// Run executes cmd's root with args in-process, prints any error to the
// command's error stream and returns the exit code. Tests use it.
func Run(cmd *cobra.Command, args []string) int {
	return run(context.Background(), cmd, args)
}

// RunContext is Run with the command's context: cancelling ctx is what a
// signal does to Main.
func RunContext(ctx context.Context, cmd *cobra.Command, args []string) int {
	return run(ctx, cmd, args)
}

func run(ctx context.Context, cmd *cobra.Command, args []string) int {
	root := cmd.Root()
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	root.SetArgs(args)
	markRun(root)
	defer engine.SetDefaultUser(engine.DefaultUser()) // started() changes it for the run
	st := &runState{}
	failed, err := root.ExecuteContextC(context.WithValue(ctx, runStateKey{}, st))
	if err != nil && !st.ran {
		err = suggestCommand(root, failed, args, err)
	}

	// Whatever fails before a command's own code runs (unknown command,
	// wrong number of arguments, missing required flag) is a usage error,
	// unless it already carries a more specific kind.
	if err != nil && !st.ran && ExitCode(err) == ExitFailed {
		err = &UsageError{Err: err}
	}
	if err != nil && ctx.Err() != nil && !errors.Is(err, context.Canceled) {
		// The command failed after the signal, from something that did not
		// say it was interrupted (a lock wait cut short, a closed pipe):
		// still an interrupted run.
		err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
	}
	code := ExitCode(err)
	if root.Annotations[annotHealthCodes] != "" {
		code = healthExitCode(err)
		if err != nil && !silent(err) {
			// So a JSON error reports the code the process exits with.
			err = &ExitError{Code: code, Err: err}
		}
	}
	streams := IOStreams{Out: root.OutOrStdout(), ErrOut: root.ErrOrStderr()}
	helpFor := root.Name()
	if failed != nil {
		helpFor = failed.CommandPath() // the help that explains what went wrong
	}
	printError(streams, jsonRequested(root, args), root.Name(), helpFor, err)
	return code
}

// suggestCommand turns a mistyped subcommand into "unknown command ...;
// did you mean ...?". Cobra says "unknown command" without suggestions
// when the root takes no arguments, and "unknown flag" when the mistyped
// word is followed by a flag only the subcommand knows.
func suggestCommand(root, failed *cobra.Command, args []string, err error) error {
	if failed != root || !root.HasAvailableSubCommands() || len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return err
	}
	if sub, _, ferr := root.Find(args[:1]); ferr == nil && sub != root {
		return err // a real subcommand
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], root.Name())
	if root.SuggestionsMinimumDistance <= 0 {
		root.SuggestionsMinimumDistance = 2 // cobra's own default
	}
	if s := root.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	}
	return &UsageError{Err: errors.New(msg)}
}

type (
	runStateKey struct{}
	runState    struct{ ran bool }
)

// markRun wraps each command's Run/RunE once so run can tell whether cobra
// got past argument and flag validation into the command itself.
func markRun(c *cobra.Command) {
	if c.Annotations[annotRunMarked] == "" {
		annotate(c, annotRunMarked)
		if f := c.RunE; f != nil {
			c.RunE = func(cmd *cobra.Command, args []string) error {
				started(cmd)
				if err := applyAliases(cmd); err != nil {
					return err
				}
				return f(cmd, args)
			}
		} else if f := c.Run; f != nil {
			c.Run = func(cmd *cobra.Command, args []string) {
				started(cmd)
				f(cmd, args)
			}
		}
	}
	for _, sub := range c.Commands() {
		markRun(sub)
	}
}

func started(cmd *cobra.Command) {
	if st, ok := cmd.Context().Value(runStateKey{}).(*runState); ok {
		st.ran = true
	}
	if g, ok := globalsOf.Load(cmd.Root()); ok {
		g.(*Globals).ctx = cmd.Context()
	}
	// Every database the command opens acts as --user / $SOMBRA_USER
	// under the access policy stored in it.
	g := Globals{}
	if f := cmd.Flags().Lookup("user"); f != nil {
		g.User = f.Value.String()
	}
	engine.SetDefaultUser(g.EffectiveUser())
}

func annotate(c *cobra.Command, key string) {
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[key] = "true"
}

// jsonRequested reports whether --json was given. The parsed flag is the
// answer, but when parsing stopped at a bad flag before reaching --json,
// the raw arguments still tell us the caller wants a JSON error.
func jsonRequested(root *cobra.Command, args []string) bool {
	if f := root.PersistentFlags().Lookup("json"); f != nil && f.Changed {
		return f.Value.String() == "true"
	}
	want := false
	for _, a := range args {
		switch a {
		case "--":
			return want
		case "--json", "--json=true", "--json=1":
			want = true
		case "--json=false", "--json=0":
			want = false
		}
	}
	return want
}
