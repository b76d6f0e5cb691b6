package clitest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failed bool
	msg    string
}

func (r *recorder) Errorf(format string, args ...any) { r.failed = true; r.msg = format }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = true; r.msg = format }
func (r *recorder) Helper()                           {}

func TestGolden(t *testing.T) {
	t.Setenv("UPDATE_GOLDEN", "")
	path := filepath.Join(t.TempDir(), "testdata", "out.golden")

	r := &recorder{TB: t}
	Golden(r, path, []byte("a\n"))
	if !r.failed || !strings.Contains(r.msg, "-update") {
		t.Errorf("missing golden file not reported (msg %q)", r.msg)
	}

	t.Setenv("UPDATE_GOLDEN", "1")
	Golden(t, path, []byte("a\tb\n"))
	if b, err := os.ReadFile(path); err != nil || string(b) != "a\tb\n" {
		t.Fatalf("update wrote %q, %v", b, err)
	}

	t.Setenv("UPDATE_GOLDEN", "")
	Golden(t, path, []byte("a\tb\n"))
	r = &recorder{TB: t}
	Golden(r, path, []byte("a\tc\n"))
	if !r.failed {
		t.Error("mismatch not reported")
	}
}

func TestDiff(t *testing.T) {
	got := diff("x\ny\nz\n", "x\nY\nz\n")
	want := "first difference at line 2:\n- \"y\"\n- \"z\"\n- \"\"\n+ \"Y\"\n+ \"z\"\n+ \"\"\n"
	if got != want {
		t.Errorf("diff = %q, want %q", got, want)
	}
}
