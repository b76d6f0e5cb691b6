// Command sombra-backup takes, lists, verifies, restores and schedules
// online backups of a Sombra database.
package main

import (
	"os"

	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/commands/backup"
)

func main() { os.Exit(cli.Main(backup.NewCommand)) }
