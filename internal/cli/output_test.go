package cli

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

type testResult struct {
	SchemaVersion int    `json:"schema_version"`
	Path          string `json:"path"`
	Pages         int    `json:"pages"`
}

func render(h *Human) {
	h.Line("database %s", "a<b>.db")
	h.KeyValues([][2]string{{"pages", "10"}, {"wal\tsize", "4096"}})
	h.Table([]string{"page", "status"}, [][]string{{"1", h.Good("ok")}, {"2", h.Bad("corrupt")}})
}

func TestResultPlain(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	s, _, out, _ := Test()
	if err := NewPrinter(s, &Globals{}).Result(testResult{1, "a.db", 10}, render); err != nil {
		t.Fatal(err)
	}
	want := "database a<b>.db\npages\t10\nwal size\t4096\npage\tstatus\n1\tok\n2\tcorrupt\n"
	if got := out.String(); got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

func TestResultTTY(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	s, _, out, _ := Test()
	s.IsTTY = true
	if err := NewPrinter(s, &Globals{}).Result(testResult{}, render); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"│ PAGE │", "│ pages       │ 10   │", "\x1b[32mok\x1b[0m", "\x1b[31;1mcorrupt\x1b["} {
		if !strings.Contains(got, want) {
			t.Errorf("TTY output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "\t") {
		t.Errorf("TTY output has tabs:\n%s", got)
	}
}

func TestResultNoColor(t *testing.T) {
	for name, setup := range map[string]func(t *testing.T, g *Globals){
		"flag": func(t *testing.T, g *Globals) { t.Setenv("NO_COLOR", ""); g.NoColor = true },
		"env":  func(t *testing.T, g *Globals) { t.Setenv("NO_COLOR", "1") },
	} {
		t.Run(name, func(t *testing.T) {
			var g Globals
			setup(t, &g)
			s, _, out, _ := Test()
			s.IsTTY = true
			if err := NewPrinter(s, &g).Result(testResult{}, render); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out.String(), "\x1b[") {
				t.Errorf("colour despite %s:\n%s", name, out.String())
			}
			if !strings.Contains(out.String(), "│") {
				t.Errorf("no table on a TTY:\n%s", out.String())
			}
		})
	}
}

func TestResultJSON(t *testing.T) {
	for _, quiet := range []bool{false, true} {
		s, _, out, errOut := Test()
		s.IsTTY = true
		called := false
		err := NewPrinter(s, &Globals{JSON: true, Quiet: quiet}).Result(
			testResult{SchemaVersion: SchemaVersion, Path: "a&b.db", Pages: 3},
			func(*Human) { called = true })
		if err != nil {
			t.Fatal(err)
		}
		if called {
			t.Error("human renderer called under --json")
		}
		want := "{\n  \"schema_version\": 2,\n  \"path\": \"a&b.db\",\n  \"pages\": 3\n}\n"
		if out.String() != want {
			t.Errorf("quiet=%v: got %q, want %q", quiet, out.String(), want)
		}
		var back testResult
		if err := json.Unmarshal(out.Bytes(), &back); err != nil || back.Pages != 3 {
			t.Errorf("round trip: %v %+v", err, back)
		}
		if errOut.Len() != 0 {
			t.Errorf("stderr = %q", errOut.String())
		}
	}
}

func TestResultJSONNeedsSchemaVersion(t *testing.T) {
	s, _, out, _ := Test()
	p := NewPrinter(s, &Globals{JSON: true})
	for _, v := range []any{struct{ A int }{1}, []int{1}, nil} {
		if err := p.Result(v, nil); err == nil {
			t.Errorf("%T accepted without schema_version", v)
		}
	}
	if out.Len() != 0 {
		t.Errorf("wrote %q for a refused result", out.String())
	}
}

func TestResultQuiet(t *testing.T) {
	s, _, out, _ := Test()
	err := NewPrinter(s, &Globals{Quiet: true}).Result(testResult{}, func(h *Human) { h.Line("hello") })
	if err != nil || out.Len() != 0 {
		t.Errorf("quiet printed %q (err %v)", out.String(), err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errPipe }

var errPipe = errors.New("broken pipe")

func TestResultWriteError(t *testing.T) {
	s := IOStreams{Out: failWriter{}}
	err := NewPrinter(s, &Globals{}).Result(testResult{}, func(h *Human) {
		h.Line("a")
		h.Table([]string{"x"}, [][]string{{"1"}})
	})
	if err != errPipe {
		t.Errorf("err = %v, want the write error", err)
	}
}

// TestBytesPipedVsTerminal (issue 12 #13): sizes are human units only on
// a terminal; in a pipe they are exact byte counts.
func TestBytesPipedVsTerminal(t *testing.T) {
	for _, tty := range []bool{false, true} {
		s, _, _, _ := Test()
		s.IsTTY = tty
		h := NewPrinter(s, &Globals{}).Human()
		got := []string{h.Bytes(1572864), h.BytesExact(1572864), h.Rate(2048)}
		want := []string{"1572864", "1572864", "2048"}
		if tty {
			want = []string{"1.5 MiB", "1.5 MiB (1572864 bytes)", "2 KiB/s"}
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("tty=%v: got %q, want %q", tty, got, want)
		}
	}
}

// TestTableFitsWidth (issue 12 #14): on a terminal of 80 or 160 columns a
// table with a long message stays within the width (the message wraps
// and nothing is lost); with the width unknown the table is not cut.
func TestTableFitsWidth(t *testing.T) {
	msg := "a compaction would reclaim 82.24% of the file, 1.03 MiB (threshold 30%); run sombra-compact --db /data/very/long/path/to/the/production/database/app.db"
	rows := [][]string{{"fragmentation", "degraded", msg}, {"header", "healthy", "format version 1, page size 4096, 321 pages"}}
	for _, width := range []int{80, 160} {
		s, _, out, _ := Test()
		s.IsTTY, s.Width = true, width
		h := NewPrinter(s, &Globals{NoColor: true}).Human()
		h.Table([]string{"check", "status", "message"}, rows)
		h.KeyValues([][2]string{{"path", "/data/very/long/path/to/the/production/database/app.db"}, {"result", msg}})
		if h.err != nil {
			t.Fatal(h.err)
		}
		text := out.String()
		for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
			if n := len([]rune(line)); n > width {
				t.Errorf("width %d: line of %d columns:\n%s", width, n, text)
				break
			}
		}
		flat := strings.Join(strings.Fields(strings.NewReplacer("│", " ", "|", " ").Replace(text)), "")
		if !strings.Contains(flat, strings.Join(strings.Fields(msg), "")) {
			t.Errorf("width %d: the message was cut:\n%s", width, text)
		}
	}
}
