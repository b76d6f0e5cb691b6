// Package commands lists the sombra-* binaries' root commands, so tools
// that need all of them (the man page generator and its staleness test)
// have one place to look.
package commands

//go:generate go run github.com/sombradb/sombra/cmd/sombra-man -out ../../man

import (
	"github.com/spf13/cobra"

	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/commands/backup"
	"github.com/sombradb/sombra/internal/commands/checkpoint"
	"github.com/sombradb/sombra/internal/commands/compact"
	"github.com/sombradb/sombra/internal/commands/healthcheck"
	"github.com/sombradb/sombra/internal/commands/info"
	"github.com/sombradb/sombra/internal/commands/repair"
	"github.com/sombradb/sombra/internal/commands/server"
)

// All builds every binary's root command. Adding a binary is one line here
// (sombra-backup and sombra-repair join when they exist); the man pages and
// the test that keeps man/ fresh pick it up.
var All = []func(cli.IOStreams) *cobra.Command{
	backup.NewCommand,
	checkpoint.NewCommand,
	compact.NewCommand,
	healthcheck.NewCommand,
	info.NewCommand,
	repair.NewCommand,
	server.NewCommand,
}

// GenerateMan writes the man pages of every command in All into dir.
func GenerateMan(dir string) error {
	s, _, _, _ := cli.Test() // the commands are only built, never run
	for _, build := range All {
		if err := cli.GenerateMan(build(s), dir); err != nil {
			return err
		}
	}
	return nil
}
