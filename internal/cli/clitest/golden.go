// Package clitest helps test sombra-* commands: run a command in-process
// and compare its output with golden files under testdata/.
package clitest

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/sombradb/sombra/internal/cli"
)

func init() {
	// Registered only if no other package in the test binary has an
	// -update flag already; Golden reads whichever one exists.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files with the current output")
	}
}

func updating() bool {
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		return true
	}
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// Golden compares got with the file at path (relative to the test's package
// directory, e.g. "testdata/info.golden"). With -update or UPDATE_GOLDEN=1
// it writes got to the file instead.
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	if updating() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update or UPDATE_GOLDEN=1 to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (rerun with -update to accept):\n%s", path, diff(string(want), string(got)))
	}
}

// diff shows the first differing line with a little context: enough to
// see what changed without a diff library.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "first difference at line %d:\n", i+1)
	for j := i; j < len(w) && j < i+3; j++ {
		fmt.Fprintf(&b, "- %q\n", w[j])
	}
	for j := i; j < len(g) && j < i+3; j++ {
		fmt.Fprintf(&b, "+ %q\n", g[j])
	}
	return b.String()
}

// RunCommand builds a command on test streams (not a terminal), runs it
// with args and returns what it wrote and its exit code.
func RunCommand(t testing.TB, build func(cli.IOStreams) *cobra.Command, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	s, _, out, errOut := cli.Test()
	code = cli.Run(build(s), args)
	return out.String(), errOut.String(), code
}
