// Command sombra-checkpoint copies WAL frames into a Sombra database file.
package main

import (
	"os"

	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/commands/checkpoint"
)

func main() { os.Exit(cli.Main(checkpoint.NewCommand)) }
