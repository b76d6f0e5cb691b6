// Command sombra-compact analyses fragmentation and compacts a Sombra database.
package main

import (
	"os"

	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/commands/compact"
)

func main() { os.Exit(cli.Main(compact.NewCommand)) }
