package engine_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// toolWords matches a command-line flag ("--force", "(--tmpdir") or a
// tool's command line ("sombra-repair --db"; not a temporary file name
// such as "sombra-repair-dry-run-").
var toolWords = regexp.MustCompile(`(^|[\s(])--[a-z]|\bsombra-(backup|repair|compact|checkpoint|info|health-check|man)(\s|$|\))`)

// TestEngineNamesNoToolOrFlag reads every string literal in the engine's
// non-test sources (this package and all below it) and fails on one that
// names a tool's flag or command line: the engine's errors and messages
// say what is wrong in the API's words, and the tools add how to go on in
// theirs (cli.WithHint, health.Remedy, repair's NeedsSalvage). Comments
// may name flags; they are not read.
func TestEngineNamesNoToolOrFlag(t *testing.T) {
	fset := token.NewFileSet()
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		n++
		ast.Inspect(f, func(node ast.Node) bool {
			lit, ok := node.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err == nil && toolWords.MatchString(s) {
				t.Errorf("%s: the engine names a tool or flag: %s", fset.Position(lit.Pos()), lit.Value)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 100 {
		t.Fatalf("read %d source files: not the engine's tree?", n)
	}
	// The pattern itself must catch what it is for.
	for _, s := range []string{"backup exists (use --force to overwrite)", "run sombra-compact", "sombra-repair --db x"} {
		if !toolWords.MatchString(s) {
			t.Errorf("pattern misses %q", s)
		}
	}
	for _, s := range []string{"sombra-repair-dry-run-", "sombra-cpu-*.pprof", "a-b--c"} {
		if toolWords.MatchString(s) {
			t.Errorf("pattern matches %q", s)
		}
	}
}
