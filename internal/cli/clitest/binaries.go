package clitest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var build struct {
	once sync.Once
	dir  string
	err  error
}

// Binaries builds every command under ./cmd once per test process into a
// temporary directory and returns it; tests that run the real binaries as
// separate processes (end-to-end, kill loops, the guide's scripts) share
// it. It skips under -short. Call RemoveBinaries from TestMain.
func Binaries(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binaries; skipped with -short")
	}
	build.once.Do(func() {
		gobin, err := exec.LookPath("go") // go test puts its own toolchain first on PATH
		if err != nil {
			build.err = fmt.Errorf("go tool not found: %w", err)
			return
		}
		mod, err := exec.Command(gobin, "env", "GOMOD").Output()
		if err != nil {
			build.err = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		tmp, err := os.MkdirTemp("", "sombra-bin-")
		if err != nil {
			build.err = err
			return
		}
		// Readable by all: tests run the tools as an unprivileged user
		// too (permission errors cannot be provoked as root).
		if err := os.Chmod(tmp, 0o755); err != nil {
			build.err = err
			return
		}
		build.dir = filepath.Join(tmp, "bin")
		cmd := exec.Command(gobin, "build", "-o", build.dir+string(filepath.Separator), "./cmd/...")
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(mod)))
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build -o %s/ ./cmd/...: %v\n%s", build.dir, err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.dir
}

// RemoveBinaries deletes what Binaries built.
func RemoveBinaries() {
	if build.dir != "" {
		os.RemoveAll(filepath.Dir(build.dir))
	}
}
