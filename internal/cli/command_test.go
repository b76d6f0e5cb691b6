package cli_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/cli/clitest"
)

type infoResult struct {
	SchemaVersion int    `json:"schema_version"`
	Path          string `json:"path"`
	Pages         int64  `json:"pages"`
}

// newTestCommand is a miniature sombra-* binary: --fail picks the error its
// run function returns, and one subcommand checks that globals reach it.
func newTestCommand(s cli.IOStreams) *cobra.Command {
	var (
		g    cli.Globals
		fail string
	)
	root := cli.NewRoot("sombra-test", "Show a test result",
		"Show a test result.\n\nExit codes: 0 ok, 1 failed, 2 usage, 3 busy, 4 corrupt.",
		"  sombra-test --db a.db\n  sombra-test --db a.db --json | jq .pages", &g, s)
	root.Args = cobra.NoArgs
	root.Flags().StringVar(&fail, "fail", "", "return an error of this kind")
	root.RunE = func(cmd *cobra.Command, _ []string) error {
		switch fail {
		case "busy":
			return fmt.Errorf("open %s: %w", g.DB, &engine.BusyError{Path: g.DB, What: engine.LockExclusive, PID: 4242})
		case "corrupt":
			return fmt.Errorf("verify: %w", &engine.CorruptionError{Path: g.DB, Page: 9, Offset: 36864, Reason: "checksum mismatch"})
		case "silent":
			return &cli.ExitError{Code: cli.ExitCorrupt}
		case "io":
			return errors.New("read a.db: input/output error")
		case "usage":
			return cli.Usagef("--db is required")
		}
		res := infoResult{SchemaVersion: cli.SchemaVersion, Path: g.DB, Pages: 12}
		return cli.NewPrinter(s, &g).Result(res, func(h *cli.Human) {
			h.KeyValues([][2]string{{"path", res.Path}, {"pages", fmt.Sprint(res.Pages)}})
		})
	}
	root.AddCommand(&cobra.Command{
		Use:  "list",
		Args: cobra.ExactArgs(1),
		RunE: func(*cobra.Command, []string) error {
			return fmt.Errorf("list %s: %w", g.DB, engine.ErrNotADatabase)
		},
	})
	return root
}

func newHealthCommand(s cli.IOStreams) *cobra.Command {
	root := newTestCommand(s)
	cli.UseHealthExitCodes(root)
	return root
}

func TestRunSuccess(t *testing.T) {
	out, errOut, code := clitest.RunCommand(t, newTestCommand, "--db", "a.db")
	if code != 0 || errOut != "" || out != "path\ta.db\npages\t12\n" {
		t.Errorf("code=%d stdout=%q stderr=%q", code, out, errOut)
	}
}

func TestRunJSONGolden(t *testing.T) {
	out, errOut, code := clitest.RunCommand(t, newTestCommand, "--db", "a.db", "--json")
	if code != 0 || errOut != "" {
		t.Fatalf("code=%d stderr=%q", code, errOut)
	}
	clitest.Golden(t, "testdata/result.json.golden", []byte(out))
}

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		stderr     string // prefix
		healthCode int
	}{
		{[]string{"--fail", "io"}, 1, "sombra-test: read a.db: input/output error\n", 3},
		{[]string{"--fail", "usage"}, 2, "sombra-test: --db is required (see 'sombra-test --help')\n", 3},
		{[]string{"--db", "a.db", "--fail", "busy"}, 3, "sombra-test: a.db: database is locked (exclusive lock held by pid 4242)\n", 3},
		{[]string{"--db", "a.db", "--fail", "corrupt"}, 4, "sombra-test: verify: a.db: corrupt page 9 at offset 36864: checksum mismatch\n", 2},
		{[]string{"--fail", "silent"}, 4, "", 4},
		{[]string{"--bogus"}, 2, "sombra-test: unknown flag: --bogus (see 'sombra-test --help')\n", 3},
		{[]string{"--wait", "forever"}, 2, "sombra-test: invalid argument \"forever\" for \"--wait\" flag: not a duration", 3},
		{[]string{"--log-level", "loud"}, 2, "sombra-test: invalid argument \"loud\" for \"--log-level\" flag: must be one of debug|info|warn|error", 3},
		{[]string{"stray"}, 2, "sombra-test: unknown command \"stray\" for \"sombra-test\"", 3},
		{[]string{"list"}, 2, "sombra-test: accepts 1 arg(s), received 0 (see 'sombra-test list --help')\n", 3},
		{[]string{"list", "--bogus", "x"}, 2, "sombra-test: unknown flag: --bogus (see 'sombra-test list --help')\n", 3},
		{[]string{"lsit", "x"}, 2, "sombra-test: unknown command \"lsit\" for \"sombra-test\"; did you mean \"list\"? (see 'sombra-test --help')\n", 3},
		{[]string{"lsit", "--only-list-knows", "x"}, 2, "sombra-test: unknown command \"lsit\" for \"sombra-test\"; did you mean \"list\"? (see 'sombra-test --help')\n", 3},
		{[]string{"list", "x", "--db", "b.db"}, 1, "sombra-test: list b.db: not a sombra database\n", 3},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, errOut, code := clitest.RunCommand(t, newTestCommand, tt.args...)
			if code != tt.code || !strings.HasPrefix(errOut, tt.stderr) || out != "" {
				t.Errorf("code=%d (want %d) stdout=%q stderr=%q (want prefix %q)", code, tt.code, out, errOut, tt.stderr)
			}
			if strings.Count(errOut, "\n") > 1 {
				t.Errorf("stderr has more than one line: %q", errOut)
			}
			if _, _, code := clitest.RunCommand(t, newHealthCommand, tt.args...); code != tt.healthCode {
				t.Errorf("health-check code=%d, want %d", code, tt.healthCode)
			}
		})
	}
}

type jsonErr struct {
	SchemaVersion int `json:"schema_version"`
	Error         struct {
		Message string `json:"message"`
		Code    int    `json:"code"`
		Kind    string `json:"kind"`
	} `json:"error"`
}

func TestRunJSONErrors(t *testing.T) {
	tests := []struct {
		build func(cli.IOStreams) *cobra.Command
		args  []string
		code  int
		kind  string
	}{
		{newTestCommand, []string{"--json", "--db", "a.db", "--fail", "busy"}, 3, "busy"},
		{newTestCommand, []string{"--json", "--fail", "corrupt"}, 4, "corrupt"},
		// Parsing stops at --bogus before it reaches --json.
		{newTestCommand, []string{"--bogus", "--json"}, 2, "usage"},
		{newTestCommand, []string{"list", "x", "--json"}, 1, "not_a_database"},
		{newHealthCommand, []string{"--json", "--bogus"}, 3, "usage"},
	}
	for _, tt := range tests {
		out, errOut, code := clitest.RunCommand(t, tt.build, tt.args...)
		var e jsonErr
		if err := json.Unmarshal([]byte(errOut), &e); err != nil {
			t.Errorf("%v: stderr is not JSON: %v: %q", tt.args, err, errOut)
			continue
		}
		if code != tt.code || e.SchemaVersion != 1 || e.Error.Code != tt.code || e.Error.Kind != tt.kind || e.Error.Message == "" || out != "" {
			t.Errorf("%v: code=%d stdout=%q error=%+v, want code %d kind %s", tt.args, code, out, e, tt.code, tt.kind)
		}
	}
	// --json=false after --json turns it off again.
	_, errOut, _ := clitest.RunCommand(t, newTestCommand, "--json", "--json=false", "--fail", "io")
	if strings.HasPrefix(errOut, "{") {
		t.Errorf("--json=false still printed JSON: %q", errOut)
	}
}

func TestRunQuiet(t *testing.T) {
	out, errOut, code := clitest.RunCommand(t, newTestCommand, "-q", "--db", "a.db")
	if code != 0 || out != "" || errOut != "" {
		t.Errorf("code=%d stdout=%q stderr=%q", code, out, errOut)
	}
	out, _, _ = clitest.RunCommand(t, newTestCommand, "-q", "--json", "--db", "a.db")
	if !strings.Contains(out, `"schema_version": 2`) {
		t.Errorf("--quiet suppressed --json output: %q", out)
	}
}

func TestRunVersionAndHelp(t *testing.T) {
	out, _, code := clitest.RunCommand(t, newTestCommand, "--version")
	if code != 0 || !strings.HasPrefix(out, "sombra-test dev\n") || !strings.Contains(out, "go:     "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH+"\n") ||
		!strings.Contains(out, "commit: ") || !strings.Contains(out, "built: ") {
		t.Errorf("--version: code=%d out=%q", code, out)
	}
	out, _, code = clitest.RunCommand(t, newTestCommand, "--help")
	if code != 0 || !strings.Contains(out, "Examples:\n  sombra-test --db a.db") || !strings.Contains(out, "--wait DURATION") {
		t.Errorf("--help: code=%d out=%q", code, out)
	}
	// Bool flags as operators type them, the usage column still aligned.
	col := func(flag, usage string) int {
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimLeft(l, " "), flag) {
				return strings.Index(l, usage)
			}
		}
		return -1
	}
	if strings.Contains(out, "[=") || col("--json ", "print the result") < 0 || col("--json ", "print the result") != col("--db PATH", "database file") ||
		col("-q, --quiet ", "print nothing") != col("--db PATH", "database file") {
		t.Errorf("--help shows bool flags oddly:\n%s", out)
	}
}

// TestVersionJSON: --version --json is one document with the version,
// commit and build date the Makefile's -ldflags set, and the Go version.
func TestVersionJSON(t *testing.T) {
	defer func(c, d string) { cli.Commit, cli.BuildDate = c, d }(cli.Commit, cli.BuildDate)
	cli.Commit, cli.BuildDate = "0123456789abcdef0123456789abcdef01234567", "2026-12-02T05:00:00Z"
	out, _, code := clitest.RunCommand(t, newTestCommand, "--version", "--json")
	var v cli.VersionInfo
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil {
		t.Fatalf("code=%d err=%v out=%q", code, err, out)
	}
	want := cli.VersionInfo{SchemaVersion: 1, Tool: "sombra-test", Version: "dev", Commit: cli.Commit, BuildDate: cli.BuildDate,
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, CommitTime: v.CommitTime, Modified: v.Modified}
	if v != want {
		t.Errorf("--version --json = %+v, want %+v", v, want)
	}
	out, _, _ = clitest.RunCommand(t, newTestCommand, "--json", "--version")
	if !strings.Contains(out, `"commit": "0123456789abcdef0123456789abcdef01234567"`) {
		t.Errorf("--json --version: %q", out)
	}
}

func TestRunCompletion(t *testing.T) {
	for shell, marker := range map[string]string{
		"bash": "__start_sombra-test",
		"zsh":  "#compdef sombra-test",
		"fish": "complete -c sombra-test",
	} {
		out, errOut, code := clitest.RunCommand(t, newTestCommand, "completion", shell)
		if code != 0 || errOut != "" || !strings.Contains(out, marker) {
			t.Errorf("completion %s: code=%d stderr=%q, output lacks %q", shell, code, errOut, marker)
		}
	}
	// A binary without subcommands gets the completion command too.
	single := func(s cli.IOStreams) *cobra.Command {
		root := cli.NewRoot("sombra-single", "x", "", "", &cli.Globals{}, s)
		root.RunE = func(*cobra.Command, []string) error { return nil }
		return root
	}
	if out, _, code := clitest.RunCommand(t, single, "completion", "bash"); code != 0 || !strings.Contains(out, "sombra-single") {
		t.Errorf("single-command completion: code=%d", code)
	}
}

// Run may be called more than once on one tree (its run-marking must not
// stack up wrappers or leak state between runs).
func TestRunTwice(t *testing.T) {
	s, _, _, _ := cli.Test()
	root := newTestCommand(s)
	if code := cli.Run(root, []string{"--fail", "io"}); code != 1 {
		t.Errorf("first run: %d", code)
	}
	if code := cli.Run(root, []string{"--bogus"}); code != 2 {
		t.Errorf("second run: %d", code)
	}
}

// TestMainExitCode runs Main in a child process (this test binary re-executed), to
// check it reads os.Args and that its result is the process exit code.
func TestMainExitCode(t *testing.T) {
	if os.Getenv("CLI_TEST_MAIN") == "1" {
		os.Args = append([]string{"sombra-test"}, strings.Fields(os.Getenv("CLI_TEST_ARGS"))...)
		os.Exit(cli.Main(newTestCommand))
	}
	for args, want := range map[string]int{"--db a.db": 0, "--fail corrupt": 4, "--nope": 2} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMainExitCode$")
		cmd.Env = append(os.Environ(), "CLI_TEST_MAIN=1", "CLI_TEST_ARGS="+args)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != want {
			t.Errorf("%s: exit %d, want %d (stdout %q, stderr %q)", args, code, want, stdout.String(), stderr.String())
		}
	}
}
