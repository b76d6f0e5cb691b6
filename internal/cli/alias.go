package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// annotAliasOf marks a flag as a deprecated alias; its value is the name of
// the flag it stands for.
const annotAliasOf = "sombra.cli/alias-of"

// DeprecatedAlias registers old on cmd as a hidden string flag standing for
// the flag name (e.g. --input for --db): scripts written against the old
// name keep working, the help and man pages show one name, and each use
// prints a one-line note on stderr saying which name to use. Giving both
// names with different values is a usage error.
//
// The note is left out under --json, whose stderr carries only JSON, and
// under --quiet, whose promise is no output on success.
func DeprecatedAlias(cmd *cobra.Command, old, name string) {
	f := cmd.Flags()
	f.String(old, "", "deprecated: use --"+name)
	_ = f.MarkHidden(old)
	_ = f.SetAnnotation(old, annotAliasOf, []string{name})
}

// applyAliases copies every deprecated alias given on the command line
// into the flag it stands for, and notes the deprecation on stderr. It runs
// when the command starts, after flag parsing (markRun).
func applyAliases(cmd *cobra.Command) error {
	fs := cmd.Flags()
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		to := f.Annotations[annotAliasOf]
		if err != nil || len(to) == 0 || !f.Changed {
			return
		}
		target := fs.Lookup(to[0])
		if target == nil {
			err = fmt.Errorf("cli: --%s is an alias of unknown flag --%s", f.Name, to[0])
			return
		}
		old, val := f.Value.String(), target.Value.String()
		if target.Changed && val != old {
			err = Usagef("--%s %s and --%s %s name different files: give --%s only", f.Name, old, to[0], val, to[0])
			return
		}
		if !flagTrue(fs, "json") && !flagTrue(fs, "quiet") {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: --%s is deprecated; use --%s\n", cmd.Root().Name(), f.Name, to[0])
		}
		if e := fs.Set(to[0], old); e != nil {
			err = &UsageError{Err: fmt.Errorf("--%s: %w", f.Name, e)}
		}
	})
	return err
}

func flagTrue(fs *pflag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	return f != nil && f.Value.String() == "true"
}
