package cli

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
)

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 49864: "48.7 KiB",
		100 << 20: "100 MiB", 3<<30 + 1<<28: "3.25 GiB",
	} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	if got := FormatBytesExact(1536); got != "1.5 KiB (1536 bytes)" {
		t.Errorf("FormatBytesExact = %q", got)
	}
	if got := FormatBytesExact(12); got != "12 B" {
		t.Errorf("FormatBytesExact = %q", got)
	}
}

func TestFormatDurationAndAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		850 * time.Microsecond:  "850µs",
		1500 * time.Microsecond: "1.5ms",
		1234 * time.Millisecond: "1.234s",
		200 * time.Second:       "3m20s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	for s, want := range map[string]int64{
		"0": 0, "1048576": 1 << 20, "512KiB": 512 << 10, "100MiB": 100 << 20, "1GiB": 1 << 30,
		"2GB": 2e9, "1G": 1 << 30, "5MB": 5e6, "1KB": 1000, "1.5M": 3 << 19, "7 k": 7 << 10, "10B": 10, "1TiB": 1 << 40,
	} {
		if got, err := ParseByteSize(s); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "lots", "-1", "5XB", "1iB", "MiB", "1.2.3K"} {
		if _, err := ParseByteSize(s); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", s)
		}
	}
}

func TestCheckDBFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.db")
	if err := CheckDBFile(missing); !errors.Is(err, engine.ErrNotFound) || err.Error() != missing+": no such file" || ExitCode(err) != ExitFailed {
		t.Errorf("missing: %v", err)
	}
	if err := CheckDBFile(dir); !errors.Is(err, engine.ErrNotADatabase) {
		t.Errorf("directory: %v", err)
	}
	f := filepath.Join(dir, "x.db")
	os.WriteFile(f, []byte("x"), 0o644)
	if err := CheckDBFile(f); err != nil {
		t.Errorf("regular file: %v", err)
	}
	var g Globals
	if _, err := g.DBPath(); ExitCode(err) != ExitUsage {
		t.Errorf("no --db: %v", err)
	}
	if _, err := OpenDB(&Globals{DB: missing}, engine.Config{}); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("OpenDB on a missing file: %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Error("OpenDB created the database")
	}
	if got := (&Globals{Wait: 2 * time.Second}).BusyTimeout(time.Minute); got != 2*time.Second {
		t.Errorf("BusyTimeout with --wait = %v", got)
	}
	if got := (&Globals{}).BusyTimeout(time.Minute); got != time.Minute {
		t.Errorf("BusyTimeout default = %v", got)
	}
}

// TestParseDuration: days and weeks as operators write them.
func TestParseDuration(t *testing.T) {
	for s, want := range map[string]time.Duration{
		"2d": 48 * time.Hour, "1w": 168 * time.Hour, "1d12h": 36 * time.Hour, "90s": 90 * time.Second, "26h": 26 * time.Hour, "0": 0,
	} {
		if got, err := ParseDuration(s); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "2x", "d", "-1d", "1.5d", "soon"} {
		if _, err := ParseDuration(s); err == nil {
			t.Errorf("ParseDuration(%q) accepted", s)
		}
	}
	if got := formatFlagDuration(48 * time.Hour); got != "2d" {
		t.Errorf("formatFlagDuration(48h) = %q", got)
	}
}
