package healthcheck_test

import (
	"strings"
	"testing"

	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/commands/fixture"
)

// TestDeepProgressOnTerminal: --deep draws the integrity check's progress
// on a terminal, in MiB against the file's size; in a pipe nothing.
func TestDeepProgressOnTerminal(t *testing.T) {
	hold := cli.FirstReading
	cli.FirstReading = 0 // this check is faster than the bar's 200 ms hold
	t.Cleanup(func() { cli.FirstReading = hold })
	_, path := newDB(t, fixture.Spec{Nodes: 3000, Edges: 3000, Seed: 3, Checkpoint: "truncate"})
	for _, tty := range []bool{true, false} {
		s, _, _, errOut := cli.Test()
		s.ErrIsTTY = tty
		if code := cli.Run(builder(cli.FixedClock(t0, 0), plenty)(s), []string{"--db", path, "--deep"}); code != 0 {
			t.Fatalf("tty=%v: exit %d: %s", tty, code, errOut)
		}
		got := errOut.String()
		if shown := strings.Contains(got, "checking app.db") && strings.Contains(got, "MiB"); shown != tty {
			t.Errorf("tty=%v: bar shown=%v: %q", tty, shown, got)
		}
	}
}
