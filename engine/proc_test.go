package engine

// Helpers for tests that run a second, real process: the test binary
// re-executes itself with -test.run selecting a "child" test and an
// environment variable telling that test what to do. The child talks to the
// parent through lines on stdout and stdin.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const childEnv = "SOMBRA_TEST_CHILD"

// childMode returns the mode a child test was started in ("" in a normal
// test run, where child tests skip themselves).
func childMode(t *testing.T, want string) bool {
	if os.Getenv(childEnv) != want {
		t.Skip("helper process for another test")
		return false
	}
	// never outlive a parent that died without killing us
	time.AfterFunc(60*time.Second, func() { os.Exit(3) })
	return true
}

type childProc struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // complete lines printed by the child
	eof    chan struct{}
	stderr *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startChild runs the test binary's childTest with SOMBRA_TEST_CHILD=mode
// and the extra environment.
func startChild(t testing.TB, childTest, mode string, env ...string) *childProc {
	t.Helper()
	return startChildWrapped(t, nil, childTest, mode, env...)
}

// startChildWrapped is startChild with the child run under a wrapper
// command (strace with fault or delay injection, for one).
func startChildWrapped(t testing.TB, wrap []string, childTest, mode string, env ...string) *childProc {
	t.Helper()
	argv := append(append([]string(nil), wrap...), os.Args[0], "-test.run=^"+childTest+"$", "-test.count=1", "-test.timeout=2m")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	cmd.Env = append(cmd.Env, env...)
	c := &childProc{t: t, cmd: cmd, lines: make(chan string, 1<<16), eof: make(chan struct{}), stderr: &syncBuffer{}}
	cmd.Stderr = c.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.eof)
		r := bufio.NewReader(out)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return // a line cut short by a kill is dropped
			}
			c.lines <- strings.TrimSuffix(line, "\n")
		}
	}()
	return c
}

func (c *childProc) pid() int { return c.cmd.Process.Pid }

// expect waits for a line starting with prefix and returns the rest.
func (c *childProc) expect(prefix string, timeout time.Duration) string {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l := <-c.lines:
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return strings.TrimSpace(rest)
			}
			if strings.HasPrefix(l, "ERR") {
				c.t.Fatalf("child: %s\nstderr:\n%s", l, c.stderr.String())
			}
		case <-c.eof:
			// drain what was read before EOF
			select {
			case l := <-c.lines:
				if rest, ok := strings.CutPrefix(l, prefix); ok {
					return strings.TrimSpace(rest)
				}
				continue
			default:
			}
			err := c.cmd.Wait()
			c.t.Fatalf("child exited (%v) before printing %q\nstderr:\n%s", err, prefix, c.stderr.String())
		case <-deadline:
			c.kill()
			c.t.Fatalf("child did not print %q within %v\nstderr:\n%s", prefix, timeout, c.stderr.String())
		}
	}
}

func (c *childProc) send(line string) {
	c.t.Helper()
	if _, err := fmt.Fprintln(c.stdin, line); err != nil {
		c.t.Fatalf("write to child: %v", err)
	}
}

// kill SIGKILLs the child and waits for it; it returns every line the
// child printed that was not consumed yet.
func (c *childProc) kill() []string {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.eof
	_ = c.cmd.Wait()
	return c.drain()
}

func (c *childProc) drain() []string {
	var out []string
	for {
		select {
		case l := <-c.lines:
			out = append(out, l)
		default:
			return out
		}
	}
}

// wait waits for a child that is expected to exit by itself with status 0.
func (c *childProc) wait(timeout time.Duration) []string {
	c.t.Helper()
	select {
	case <-c.eof:
	case <-time.After(timeout):
		c.kill()
		c.t.Fatalf("child did not exit within %v\nstderr:\n%s", timeout, c.stderr.String())
	}
	if err := c.cmd.Wait(); err != nil {
		c.t.Fatalf("child failed: %v\nstderr:\n%s", err, c.stderr.String())
	}
	return c.drain()
}

// childOut is how a child reports to its parent: one line per call. A
// failed write means the parent is gone, so the child exits.
var childOutMu sync.Mutex

func childSay(format string, args ...any) {
	childOutMu.Lock()
	defer childOutMu.Unlock()
	if _, err := fmt.Fprintf(os.Stdout, format+"\n", args...); err != nil {
		os.Exit(4)
	}
}

// childFail reports an error to the parent and exits non-zero.
func childFail(format string, args ...any) {
	childSay("ERR "+format, args...)
	os.Exit(2)
}

// childReadLine reads one line from the parent (stdin).
var childStdin = bufio.NewReader(os.Stdin)

func childReadLine() string {
	l, err := childStdin.ReadString('\n')
	if err != nil {
		os.Exit(0) // parent closed stdin or died
	}
	return strings.TrimSpace(l)
}
