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

// TestManSections: every page has a SYNOPSIS listing the options (bool
// flags bare), EXIT STATUS (the help text's own, moved out of DESCRIPTION,
// or the shared scheme), ENVIRONMENT and FILES.
func TestManSections(t *testing.T) {
	root := manTree()
	root.Long = "Demo tool long text.\n\nEXIT STATUS\n\n    0 fine; 7 odd\n    and more.\n\nAfter."
	root.Flags().Bool("force", false, "overwrite")
	root.Flags().Duration("age", 0, "maximum `AGE`")
	dir := t.TempDir()
	if err := GenerateMan(root, dir); err != nil {
		t.Fatal(err)
	}
	files := readDir(t, dir)
	page := string(files["sombra-demo.1"])
	for _, want := range []string{
		".SH SYNOPSIS\n\\fBsombra-demo\\fP ", `[\fB\-\-force\fP]`, `[\fB\-\-age\fP \fIAGE\fP]`, `[\fB\-\-db\fP \fIPATH\fP]`,
		"\\fBsombra-demo\\fP \\fICOMMAND\\fP",
		".SH EXIT STATUS\n0 fine; 7 odd and more. 130 interrupted by SIGINT or SIGTERM",
		".SH ENVIRONMENT\n", "\\fBNO_COLOR\\fP", "\\fBSOMBRA_ENCRYPTION_KEY\\fP",
		".SH FILES\n", `\fB.db\-wal\fP`, `\fB.db\-shm\fP`, `\fB.db\-changes\fP`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("sombra-demo.1 lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "[flags]") || strings.Contains(page, "[=false]") || strings.Contains(page, "[=true]") || strings.Count(page, "0 fine") != 1 {
		t.Errorf("sombra-demo.1 has a bare use line, a [=true] flag or EXIT STATUS twice:\n%s", page)
	}
	sub := string(files["sombra-demo-list.1"])
	for _, want := range []string{".SH SYNOPSIS\n\\fBsombra-demo list\\fP [\\fIglobal options\\fP]", ".SH EXIT STATUS\n0 success; 1 failed", ".SH FILES\n"} {
		if !strings.Contains(sub, want) {
			t.Errorf("sombra-demo-list.1 lacks %q:\n%s", want, sub)
		}
	}
}
