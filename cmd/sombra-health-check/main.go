// Command sombra-health-check reports a Sombra database's health with
// monitoring-plugin exit codes.
package main

import (
	"os"

	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/commands/healthcheck"
)

func main() { os.Exit(cli.Main(healthcheck.NewCommand)) }
