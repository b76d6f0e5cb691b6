// Command sombra-info prints a read-only summary of a Sombra database.
package main

import (
	"os"

	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/commands/info"
)

func main() { os.Exit(cli.Main(info.NewCommand)) }
