// Package cli is the plumbing shared by the six sombra-* binaries: I/O
// streams, global flags, the result printer (table, plain lines or JSON),
// error output, exit codes, progress bars and man pages.
//
// A command is built against an IOStreams value and returns a Go error;
// Run/Main turn that error into one line (or one JSON object) on stderr and
// an exit code, so that mapping lives in exactly one place.
//
// Exit codes, the same for every binary except sombra-health-check:
//
//	0  success
//	1  operation failed (I/O, internal, not a database, wrong version)
//	2  usage error
//	3  database busy or locked (retry later)
//	4  corruption or integrity problems found
//
// sombra-health-check uses the monitoring-plugin convention instead (see
// UseHealthExitCodes): 0 healthy, 1 degraded, 2 unhealthy, 3 unknown.
package cli
