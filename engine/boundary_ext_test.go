package engine_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPagerUnreachable builds programs in a scratch module that uses this
// one as a library (a replace directive to this checkout), as a program
// outside the project would: the public API builds, and every way below it
// fails to compile — the page layer, the snapshot under a transaction, the
// repair and import primitives, and the bridge package that the
// maintenance packages use (issue 9 §1). It runs offline: GOPROXY=off and
// the module cache the project's own build filled.
func TestPagerUnreachable(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/outsider\n\ngo 1.26.0\n\nrequire github.com/sombradb/sombra v0.0.0\n\nreplace github.com/sombradb/sombra => "+root+"\n")
	write("go.sum", string(sum))
	build := func(pkg string) (string, error) {
		cmd := exec.Command(gobin, "build", "-o", os.DevNull, "./"+pkg)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOSUMDB=off")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// The control: the public API compiles from outside, so a failure
	// below is the boundary and not the scratch module.
	write("public/main.go", `package main

import "github.com/sombradb/sombra/engine"

func main() {
	db, err := engine.Open("x.db")
	if err != nil {
		return
	}
	defer db.Close()
	_ = db.View(func(tx *engine.Tx) error { _, err := tx.LogicalHash(); return err })
}
`)
	if out, err := build("public"); err != nil {
		t.Fatalf("a program using only the public API does not build: %v\n%s", err, out)
	}

	write("sidedoor/main.go", `package main

import (
	"context"

	"github.com/sombradb/sombra/engine"
)

func main() {
	db, _ := engine.Open("x.db")
	_ = db.Pager()
	_, _ = db.SnapshotLogicalHashContext(context.Background(), nil)
	tx, _ := db.BeginReadTransaction()
	_ = tx.Snapshot()
	_, _ = tx.Repair()
	_ = tx.ImportNode(1, nil, nil)
	_ = tx.ReserveIDs(1, 1)
}
`)
	out, err := build("sidedoor")
	if err == nil {
		t.Fatal("a program reaching for the pager through engine's API builds")
	}
	for _, want := range []string{"db.Pager undefined", "db.SnapshotLogicalHashContext undefined",
		"tx.Snapshot undefined", "tx.Repair undefined", "tx.ImportNode undefined", "tx.ReserveIDs undefined"} {
		if !strings.Contains(out, want) {
			t.Errorf("go build output lacks %q:\n%s", want, out)
		}
	}

	for _, pkg := range []string{"engine/internal/handle", "engine/internal/pager"} {
		name := strings.ReplaceAll(pkg, "/", "_")
		write(name+"/main.go", `package main

import _ "github.com/sombradb/sombra/`+pkg+`"

func main() {}
`)
		out, err := build(name)
		if err == nil || !strings.Contains(out, "use of internal package github.com/sombradb/sombra/"+pkg+" not allowed") {
			t.Errorf("importing %s from outside the module: %v\n%s", pkg, err, out)
		}
	}
}
