package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sombradb/sombra/engine"
)

func TestPrintErrorHuman(t *testing.T) {
	s, _, out, errOut := Test()
	PrintError(s, false, "sombra-info", fmt.Errorf("open x.db: %w", engine.ErrNotADatabase))
	if got, want := errOut.String(), "sombra-info: x.db: not a sombra database\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
	if out.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", out.String())
	}
}

func TestPrintErrorUsageHint(t *testing.T) {
	s, _, _, errOut := Test()
	PrintError(s, false, "sombra-compact", Usagef("--db is required"))
	if got, want := errOut.String(), "sombra-compact: --db is required (see 'sombra-compact --help')\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
}

func TestPrintErrorOneLine(t *testing.T) {
	s, _, _, errOut := Test()
	PrintError(s, false, "sombra-repair", errors.Join(errors.New("first\n"), errors.New("second\r\nthird")))
	if got, want := errOut.String(), "sombra-repair: first; second; third\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
}

func TestPrintErrorJSON(t *testing.T) {
	tests := []struct {
		err  error
		code int
		kind string
	}{
		{&engine.BusyError{Path: "a.db", What: engine.LockExclusive, PID: 99}, ExitBusy, KindBusy},
		{fmt.Errorf("verify: %w", &engine.CorruptionError{Path: "a.db", Page: 3, Offset: 12288, Reason: "checksum"}), ExitCorrupt, KindCorrupt},
		{Usagef("unknown flag: --x"), ExitUsage, KindUsage},
		{fmt.Errorf("a.db: %w", engine.ErrNotADatabase), ExitFailed, KindNotADatabase},
		{fmt.Errorf("a.db: %w", engine.ErrVersion), ExitFailed, KindVersion},
		{fmt.Errorf("node 5: %w", engine.ErrNotFound), ExitFailed, KindNotFound},
		{fmt.Errorf("out.db: %w", engine.ErrExists), ExitFailed, KindExists},
		{errors.New("multi\nline"), ExitFailed, KindFailed},
	}
	for _, tt := range tests {
		s, _, _, errOut := Test()
		PrintError(s, true, "sombra-info", tt.err)
		line := errOut.String()
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
			t.Errorf("%v: want exactly one line, got %q", tt.err, line)
		}
		var doc struct {
			SchemaVersion int `json:"schema_version"`
			Error         struct {
				Message string `json:"message"`
				Code    int    `json:"code"`
				Kind    string `json:"kind"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("%v: not JSON: %v: %q", tt.err, err, line)
		}
		if doc.SchemaVersion != 1 || doc.Error.Code != tt.code || doc.Error.Kind != tt.kind ||
			doc.Error.Message != oneLine(tt.err.Error()) {
			t.Errorf("%v: got %+v, want code %d kind %s", tt.err, doc, tt.code, tt.kind)
		}
	}
}

func TestPrintErrorSilent(t *testing.T) {
	for _, jsonMode := range []bool{false, true} {
		s, _, _, errOut := Test()
		PrintError(s, jsonMode, "sombra-repair", &ExitError{Code: ExitCorrupt})
		PrintError(s, jsonMode, "sombra-repair", nil)
		if errOut.Len() != 0 {
			t.Errorf("json=%v: got %q, want nothing", jsonMode, errOut.String())
		}
	}
}

func TestMessageSaysEachPartOnce(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"open run/d.db: open run/d.db: permission denied", "run/d.db: permission denied"},
		{"info run/d.db: run/d.db: corrupt page 1 at offset 4096: checksum mismatch", "info run/d.db: corrupt page 1 at offset 4096: checksum mismatch"},
		{"run/d.db: not a sombra database", "run/d.db: not a sombra database"},
		{"compact run/d.db: rename: file exists", "compact run/d.db: rename: file exists"},
		{"backup x.db: write out.backup: no space left on device", "backup x.db: write out.backup: no space left on device"},
	} {
		if got := Message(errors.New(tc.in)); got != tc.want {
			t.Errorf("Message(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
