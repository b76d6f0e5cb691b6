package commands_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/commands"
)

// manDir is the checked-in man/ directory, relative to this package.
const manDir = "../../man"

// TestManPagesFresh regenerates the man pages and fails when man/ differs,
// so a flag or help text changed without regenerating is caught in CI.
func TestManPagesFresh(t *testing.T) {
	tmp := t.TempDir()
	if err := commands.GenerateMan(tmp); err != nil {
		t.Fatal(err)
	}
	want := pages(t, tmp)
	got := pages(t, manDir)
	const fix = "man/ is stale: run `make man` (go run ./cmd/sombra-man -out man) and commit the result"
	for _, name := range want {
		a, _ := os.ReadFile(filepath.Join(tmp, name))
		b, err := os.ReadFile(filepath.Join(manDir, name))
		if err != nil {
			t.Errorf("%s missing from man/; %s", name, fix)
			continue
		}
		if !bytes.Equal(a, b) {
			t.Errorf("man/%s differs from the commands; %s", name, fix)
		}
	}
	for _, name := range got {
		if !slices.Contains(want, name) {
			t.Errorf("man/%s belongs to no command; %s", name, fix)
		}
	}
}

func pages(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.1"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

// TestEveryCommandDocumentsJSON: each binary's help documents its JSON
// fields, schema version and exit codes, and has examples.
func TestEveryCommandDocumentsJSON(t *testing.T) {
	s, _, _, _ := cli.Test()
	for _, build := range commands.All {
		cmd := build(s)
		for _, want := range []string{"JSON OUTPUT", "schema_version", "EXIT STATUS"} {
			if !bytes.Contains([]byte(cmd.Long), []byte(want)) {
				t.Errorf("%s: Long help lacks %q", cmd.Name(), want)
			}
		}
		if cmd.Example == "" {
			t.Errorf("%s: no examples", cmd.Name())
		}
	}
}
