package repair_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/fixtures"
)

// TestSalvageProgressOnTerminal: a salvage shows a bar for each phase on
// a terminal: the scan (bytes of the source), the write (records) and the
// check of the new database; and verification shows the check's.
func TestSalvageProgressOnTerminal(t *testing.T) {
	hold := cli.FirstReading
	cli.FirstReading = 0 // these phases are faster than the bar's 200 ms hold
	t.Cleanup(func() { cli.FirstReading = hold })
	dir, path := copyFixture(t, fixtures.Healthy)
	s, _, _, errOut := cli.Test()
	s.ErrIsTTY = true
	out := filepath.Join(dir, "new.db")
	if code := cli.Run(build(s), []string{"--db", path, "--salvage-to", out}); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	got := errOut.String()
	for _, want := range []string{"scanning " + filepath.Base(path), "writing new.db", "records", "checking new.db", "MiB"} {
		if !strings.Contains(got, want) {
			t.Errorf("stderr lacks %q: %q", want, got)
		}
	}
	s, _, _, errOut = cli.Test()
	s.ErrIsTTY = true
	if code := cli.Run(build(s), []string{"--db", path}); code != 0 {
		t.Fatalf("verify: exit %d: %s", code, errOut)
	}
	if got := errOut.String(); !strings.Contains(got, "checking "+filepath.Base(path)) {
		t.Errorf("verify drew no bar: %q", got)
	}
}
