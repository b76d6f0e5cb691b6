package clitest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
)

const (
	holdEnv   = "SOMBRA_CLITEST_HOLD"
	holdDBEnv = "SOMBRA_CLITEST_HOLD_DB"
)

// RunHolderIfChild turns the test binary into the lock holder that Hold
// starts, when it was started as one; call it first in TestMain. The
// holder opens the database, takes what its mode says ("open": nothing
// more, an idle connection; "read": a read transaction; "write": an
// uncommitted write transaction, holding the writer lock), prints "ready"
// and holds it until stdin closes.
func RunHolderIfChild() {
	mode := os.Getenv(holdEnv)
	if mode == "" {
		return
	}
	time.AfterFunc(2*time.Minute, func() { os.Exit(3) }) // never outlive a dead parent for long
	db, err := engine.OpenWithConfig(os.Getenv(holdDBEnv), engine.Config{WALAutoCheckpoint: -1})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	switch mode {
	case "read":
		if _, err = db.BeginReadTransaction(); err != nil {
			break
		}
	case "write":
		var tx *engine.Tx
		if tx, err = db.BeginTransaction(); err == nil {
			_, err = tx.CreateNode("Held", nil)
		}
	}
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// Hold starts a second process (this test binary, see RunHolderIfChild)
// that holds the database at path open as mode says, waits until it does,
// and returns its pid. The process ends when the test does.
func Hold(t testing.TB, path, mode string) int {
	t.Helper()
	cmd, stdin, out := StartSelf(t, holdEnv+"="+mode, holdDBEnv+"="+path)
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	line, err := out.ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("holder of %s (%s): %q %v", path, mode, line, err)
	}
	return cmd.Process.Pid
}

// StartSelf starts this test binary again as a child process (running no
// test; the extra environment tells its TestMain what to do), with pipes
// to its stdin and from its stdout. The caller registers how it ends.
func StartSelf(t testing.TB, env ...string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdin, bufio.NewReader(out)
}
