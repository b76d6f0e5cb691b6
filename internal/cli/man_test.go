package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func manTree() *cobra.Command {
	s, _, _, _ := Test()
	root := NewRoot("sombra-demo", "Demo tool", "Demo tool long text.", "  sombra-demo --db a.db", &Globals{}, s)
	root.RunE = func(*cobra.Command, []string) error { return nil }
	root.AddCommand(&cobra.Command{
		Use:     "list",
		Short:   "List things",
		Example: "  sombra-demo list --db a.db",
		RunE:    func(*cobra.Command, []string) error { return nil },
	})
	return root
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

func TestGenerateManDeterministic(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "") // must not matter either way
	dirs := []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b", "man")}
	for _, d := range dirs {
		if err := GenerateMan(manTree(), d); err != nil {
			t.Fatal(err)
		}
	}
	a, b := readDir(t, dirs[0]), readDir(t, dirs[1])
	var names []string
	for name := range a {
		names = append(names, name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"sombra-demo-list.1", "sombra-demo.1"}) {
		t.Fatalf("generated %v", names)
	}
	for _, name := range names {
		if !bytes.Equal(a[name], b[name]) {
			t.Errorf("%s differs between runs", name)
		}
	}
	page := string(a["sombra-demo.1"])
	for _, want := range []string{"Jan 2025", "Sombra Manual", `\fB--wait\fP`, "sombra-demo --db a.db"} {
		if !strings.Contains(page, want) {
			t.Errorf("sombra-demo.1 lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "Auto generated") {
		t.Errorf("sombra-demo.1 carries cobra's auto-generated tag")
	}
}
