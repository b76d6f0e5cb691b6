package cli

import (
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// companionSuffixes are files that live next to a database but are not one:
// its WAL, shared-memory index and change log, and the cron scripts' lock
// files. --db completion leaves them out.
var companionSuffixes = []string{"-wal", "-shm", "-changes", "-verified", ".lock", ".backup", ".tmp"}

// CompleteDatabaseFiles completes --db: directories (to descend into) and
// files that may be databases, never NAME.db-wal, -shm or -changes.
func CompleteDatabaseFiles(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	dir, prefix := filepath.Split(toComplete)
	list := dir
	if list == "" {
		list = "."
	}
	entries, err := os.ReadDir(list)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	directive := cobra.ShellCompDirectiveNoFileComp
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) || (strings.HasPrefix(name, ".") && !strings.HasPrefix(prefix, ".")) {
			continue
		}
		isDir := e.IsDir()
		if e.Type()&os.ModeSymlink != 0 {
			if fi, err := os.Stat(filepath.Join(list, name)); err == nil {
				isDir = fi.IsDir()
			}
		}
		switch {
		case isDir:
			out = append(out, dir+name+"/")
			directive |= cobra.ShellCompDirectiveNoSpace // keep typing inside it
		case !e.Type().IsRegular() && e.Type()&os.ModeSymlink == 0:
		case hasCompanionSuffix(name):
		default:
			out = append(out, dir+name)
		}
	}
	return out, directive
}

func hasCompanionSuffix(name string) bool {
	for _, s := range companionSuffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// CompleteBackupNames returns a completion function for a backup name
// (a --name flag or a positional NAME): the NAME of every NAME.backup in
// the directory given by the command's dirFlag (default ".").
func CompleteBackupNames(dirFlag string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		dir := "."
		if f := cmd.Flags().Lookup(dirFlag); f != nil && f.Value.String() != "" {
			dir = f.Value.String()
		}
		matches, err := filepath.Glob(filepath.Join(dir, "*.backup"))
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, m := range matches {
			name := strings.TrimSuffix(filepath.Base(m), ".backup")
			if strings.HasPrefix(name, toComplete) {
				out = append(out, name)
			}
		}
		sort.Strings(out)
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
