package cli

import (
	"bytes"
	"io"
	"os"
	"strconv"

	"github.com/mattn/go-colorable"
	"github.com/mattn/go-isatty"
	"golang.org/x/sys/unix"
)

// IOStreams is everything a command reads from and writes to. Commands never
// touch os.Stdin/Stdout/Stderr, so tests run them in-process and capture all
// output.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer // results only, so pipes into jq stay clean
	ErrOut io.Writer // errors, logs, progress

	// IsTTY reports whether Out is a terminal: tables and colour for a
	// person, tab-separated lines for a pipe or cron.
	IsTTY bool
	// ErrIsTTY reports whether ErrOut is a terminal: progress bars only then.
	ErrIsTTY bool
	// InIsTTY reports whether In is a terminal: confirmation prompts only
	// then (and only when ErrOut is one too).
	InIsTTY bool
	// Width is the terminal's width in columns when Out is a terminal
	// (0: unknown); tables are fitted to it. Tests inject it.
	Width int
}

// System returns the process's standard streams.
func System() IOStreams {
	return IOStreams{
		In: os.Stdin,
		// colorable passes bytes through on Unix and translates ANSI
		// escapes on old Windows consoles.
		Out:      colorable.NewColorable(os.Stdout),
		ErrOut:   colorable.NewColorable(os.Stderr),
		IsTTY:    isTerminal(os.Stdout),
		ErrIsTTY: isTerminal(os.Stderr),
		InIsTTY:  isTerminal(os.Stdin),
		Width:    termWidth(os.Stdout),
	}
}

// termWidth is f's terminal width: the window size the kernel reports,
// else $COLUMNS (what the shell says), else 0 (unknown: no fitting).
func termWidth(f *os.File) int {
	if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
		return int(ws.Col)
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return 0
}

func isTerminal(f *os.File) bool {
	fd := f.Fd()
	return isatty.IsTerminal(fd) || isatty.IsCygwinTerminal(fd)
}

// Test returns streams over in-memory buffers, as a pipe would look (not a
// TTY). Set IsTTY/ErrIsTTY on the result to test terminal output.
func Test() (s IOStreams, in, out, errOut *bytes.Buffer) {
	in, out, errOut = new(bytes.Buffer), new(bytes.Buffer), new(bytes.Buffer)
	return IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}
