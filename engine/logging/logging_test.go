package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	cases := []struct {
		in   string
		want Spec
	}{
		{"", Spec{Level: slog.LevelInfo, Format: "text"}},
		{"info,json", Spec{Level: slog.LevelInfo, Format: "json"}},
		{"debug", Spec{Level: slog.LevelDebug, Format: "text"}},
		{"warn,text", Spec{Level: slog.LevelWarn, Format: "text"}},
		{" JSON , Warning ", Spec{Level: slog.LevelWarn, Format: "json"}},
		{"error,stdout,source", Spec{Level: slog.LevelError, Format: "text", Stdout: true, AddSource: true}},
		{"trace,json,file=/tmp/Some.log", Spec{Level: LevelTrace, Format: "json", File: "/tmp/Some.log"}},
		{"off", Spec{Level: slog.LevelInfo, Format: "text", Off: true}},
	}
	for _, c := range cases {
		got, err := ParseSpec(c.in)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseSpec(%q) = %+v, want %+v", c.in, got, c.want)
		}
		// String round-trips.
		again, err := ParseSpec(got.String())
		if err != nil || again != got {
			t.Errorf("ParseSpec(%q.String() = %q) = %+v, %v", c.in, got.String(), again, err)
		}
	}
	for _, bad := range []string{"verbose", "info,debug", "json,text", "info,", ",info", "file=", "stderr,stdout",
		"file=a,file=b", "off,info", "source,source", "info;json"} {
		if _, err := ParseSpec(bad); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("ParseSpec(%q) = %v, want ErrInvalidSpec", bad, err)
		}
	}
}

func TestInitLoggingFileJSON(t *testing.T) {
	prev := slog.Default()
	defer slog.SetDefault(prev)
	path := filepath.Join(t.TempDir(), "sombra.log")
	l, err := InitLogging("info,json,file=" + path)
	if err != nil {
		t.Fatal(err)
	}
	if slog.Default() != l {
		t.Error("InitLogging did not set the default logger")
	}
	l.Debug("hidden")
	l.Info("transaction commit", "lsn", 7)
	slog.Warn("slow operation", "duration_ms", 150) // through the default
	// Replacing the default closes the file; the records are in it.
	if _, err := InitLogging("off"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("log file has %d lines, want 2 (debug filtered out):\n%s", len(lines), b)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("not JSON: %q: %v", lines[0], err)
	}
	if rec["msg"] != "transaction commit" || rec["level"] != "INFO" || rec["lsn"] != float64(7) {
		t.Errorf("record = %v", rec)
	}
	if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil || rec["level"] != "WARN" {
		t.Errorf("second record = %v, %v", rec, err)
	}
}

func TestInvalidSpecKeepsDefault(t *testing.T) {
	prev := slog.Default()
	if _, err := InitLogging("loud"); !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("err = %v", err)
	}
	if slog.Default() != prev {
		t.Error("an invalid spec changed the default logger")
	}
	if _, _, err := New("info,file=" + filepath.Join(t.TempDir(), "missing", "dir", "x.log")); err == nil {
		t.Error("a log file in a missing directory should fail")
	}
}

func TestHandlerFormatsAndLevels(t *testing.T) {
	var buf bytes.Buffer
	s, _ := ParseSpec("warn,text")
	l := slog.New(s.Handler(&buf))
	l.Info("no")
	l.Warn("resource alert", "resource", "cache")
	out := buf.String()
	if strings.Contains(out, "msg=no") || !strings.Contains(out, `level=WARN msg="resource alert" resource=cache`) {
		t.Errorf("text output = %q", out)
	}
	buf.Reset()
	s, _ = ParseSpec("trace")
	slog.New(s.Handler(&buf)).Log(t.Context(), LevelTrace, "deep")
	if !strings.Contains(buf.String(), "level=TRACE") {
		t.Errorf("trace output = %q", buf.String())
	}
}

func TestRecorder(t *testing.T) {
	r := NewRecorder(slog.LevelInfo)
	l := r.Logger().With("db", "x.db").WithGroup("g")
	l.Debug("skipped")
	l.Info("checkpoint", "pages", 3)
	recs := r.Find("checkpoint")
	if len(recs) != 1 || len(r.Records()) != 1 {
		t.Fatalf("records = %v", r.Records())
	}
	if v, ok := Attr(recs[0], "db"); !ok || v.String() != "x.db" {
		t.Errorf("db attr = %v %v", v, ok)
	}
	if v, ok := Attr(recs[0], "g.pages"); !ok || v.Int64() != 3 {
		t.Errorf("g.pages attr = %v %v", v, ok)
	}
	r.Reset()
	if len(r.Records()) != 0 {
		t.Error("Reset kept records")
	}
}
