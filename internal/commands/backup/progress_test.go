package backup_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sombradb/sombra/internal/cli"
)

// TestProgressOnTerminal: backup, verify and restore draw their progress
// from the engine's callbacks on a terminal (IEC units), nothing in a pipe.
func TestProgressOnTerminal(t *testing.T) {
	hold := cli.FirstReading
	cli.FirstReading = 0 // these operations are faster than the bar's 200 ms hold
	t.Cleanup(func() { cli.FirstReading = hold })
	dir, path := newDB(t)
	bdir := filepath.Join(dir, "b")
	for _, tc := range []struct {
		args []string
		bar  string
	}{
		{[]string{"--type", "full", "--db", path, "--output", filepath.Join(bdir, "full_1")}, "backup full_1"},
		{[]string{"verify", filepath.Join(bdir, "full_1.backup")}, "verify full_1"},
		{[]string{"restore", "--dir", bdir, "--name", "full_1", "--db", filepath.Join(dir, "r.db")}, "restore r.db"},
	} {
		for _, tty := range []bool{true, false} {
			s, _, _, errOut := cli.Test()
			s.ErrIsTTY = tty
			args := tc.args
			if !tty && tc.bar != "verify full_1" {
				args = append(append([]string{}, args...), "--force") // the first round made it
			}
			if code := cli.Run(build(s), args); code != 0 {
				t.Fatalf("%v: exit %d: %s", args, code, errOut)
			}
			got := errOut.String()
			if shown := strings.Contains(got, tc.bar) && strings.Contains(got, "iB"); shown != tty { // IEC units
				t.Errorf("%v tty=%v: bar shown=%v: %q", args, tty, shown, got)
			}
		}
	}
}
