package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func parseGlobals(t *testing.T, args ...string) (*Globals, error) {
	t.Helper()
	var g Globals
	cmd := &cobra.Command{Use: "x"}
	AddGlobalFlags(cmd, &g)
	return &g, cmd.ParseFlags(args)
}

func TestGlobalFlags(t *testing.T) {
	g, err := parseGlobals(t)
	if err != nil {
		t.Fatal(err)
	}
	if *g != (Globals{LogLevel: "warn", LogFormat: "text"}) {
		t.Errorf("defaults = %+v", *g)
	}
	g, err = parseGlobals(t, "--db", "a.db", "--json", "-q", "--no-color", "--wait", "1m30s",
		"--log-level", "debug", "--log-format", "json")
	if err != nil {
		t.Fatal(err)
	}
	want := Globals{DB: "a.db", JSON: true, Quiet: true, NoColor: true, Wait: 90 * time.Second, LogLevel: "debug", LogFormat: "json"}
	if *g != want {
		t.Errorf("got %+v, want %+v", *g, want)
	}
}

// TestWaitTakesDays: --wait parses durations as every other duration flag
// does (cli.ParseDuration), days included.
func TestWaitTakesDays(t *testing.T) {
	for arg, want := range map[string]time.Duration{"1d": 24 * time.Hour, "1d12h": 36 * time.Hour, "500ms": 500 * time.Millisecond, "0s": 0} {
		g, err := parseGlobals(t, "--wait", arg)
		if err != nil {
			t.Fatalf("--wait %s: %v", arg, err)
		}
		if g.Wait != want {
			t.Errorf("--wait %s = %v, want %v", arg, g.Wait, want)
		}
	}
}

func TestGlobalFlagsReject(t *testing.T) {
	for _, args := range [][]string{
		{"--log-level", "loud"},
		{"--log-format", "xml"},
		{"--wait", "soon"},
		{"--wait", "-1s"},
		{"--wait", "1x"},
	} {
		if _, err := parseGlobals(t, args...); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
}

func TestLogger(t *testing.T) {
	s, _, out, errOut := Test()
	g := &Globals{LogLevel: "info", LogFormat: "json"}
	log := g.Logger(s)
	log.Debug("hidden")
	log.Info("checkpoint done", "frames", 12)
	if out.Len() != 0 {
		t.Errorf("logs went to stdout: %q", out.String())
	}
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want 1 log line, got %q", errOut.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["msg"] != "checkpoint done" || rec["frames"] != float64(12) {
		t.Errorf("record = %v", rec)
	}

	s, _, _, errOut = Test()
	(&Globals{LogLevel: "warn", LogFormat: "text"}).Logger(s).Warn("slow", "ms", 150)
	if got := errOut.String(); !strings.Contains(got, "level=WARN msg=slow ms=150") {
		t.Errorf("text log = %q", got)
	}
}

func TestColor(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	tty := IOStreams{IsTTY: true}
	if !(&Globals{}).Color(tty) {
		t.Error("colour off on a TTY")
	}
	if (&Globals{}).Color(IOStreams{}) {
		t.Error("colour on in a pipe")
	}
	if (&Globals{NoColor: true}).Color(tty) {
		t.Error("colour on with --no-color")
	}
	t.Setenv("NO_COLOR", "1")
	if (&Globals{}).Color(tty) {
		t.Error("colour on with NO_COLOR set")
	}
}
