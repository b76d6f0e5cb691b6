// Command sombra-man writes the man pages of every sombra-* binary into a
// directory (default "man"):
//
//	go run ./cmd/sombra-man -out man    # what `make man` runs
//	go generate ./internal/commands     # the same
//
// A test in internal/commands (`make man-check`) fails when man/ is stale.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/sombradb/sombra/internal/commands"
)

func main() {
	out := flag.String("out", "man", "directory to write the man pages into")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: sombra-man [-out DIR]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := commands.GenerateMan(*out); err != nil {
		fmt.Fprintln(os.Stderr, "sombra-man:", err)
		os.Exit(1)
	}
}
