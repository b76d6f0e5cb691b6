// Command sombra-repair verifies a Sombra database, repairs it in place,
// or salvages its nodes and edges into a new database.
package main

import (
	"os"

	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/commands/repair"
)

func main() { os.Exit(cli.Main(repair.NewCommand)) }
