// Command sombra-server serves one Sombra database over HTTP/JSON, alone
// or as a member of a replicated set (primary or replica) over NATS
// JetStream.
package main

import (
	"os"

	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/commands/server"
)

func main() { os.Exit(cli.Main(server.NewCommand)) }
