package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

// manDate is the date printed in every man page footer. It is fixed so that
// regenerating man/ changes files only when the commands change (CI checks
// that man/ is fresh by regenerating and diffing).
var manDate = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

// GenerateMan writes section-1 man pages for cmd and its subcommands into
// dir (created if needed), e.g. sombra-backup.1, sombra-backup-list.1.
// Each page has cobra's sections plus a SYNOPSIS that lists the options,
// and EXIT STATUS, ENVIRONMENT and FILES sections.
func GenerateMan(cmd *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	disableAutoGenTag(cmd)
	return genManTree(cmd, dir)
}

func genManTree(cmd *cobra.Command, dir string) error {
	for _, c := range cmd.Commands() {
		if !c.IsAvailableCommand() || c.IsAdditionalHelpTopicCommand() {
			continue
		}
		if err := genManTree(c, dir); err != nil {
			return err
		}
	}
	page, err := manPage(cmd)
	if err != nil {
		return fmt.Errorf("generating man page for %s: %w", cmd.CommandPath(), err)
	}
	name := strings.ReplaceAll(cmd.CommandPath(), " ", "-") + ".1"
	if err := os.WriteFile(filepath.Join(dir, name), page, 0o644); err != nil {
		return fmt.Errorf("generating man page for %s: %w", cmd.CommandPath(), err)
	}
	return nil
}

func manPage(cmd *cobra.Command) ([]byte, error) {
	// The EXIT STATUS paragraph of the help text becomes its own section.
	long := cmd.Long
	desc, exit := splitExitStatus(long)
	cmd.Long = desc
	defer func() { cmd.Long = long }()

	header := &doc.GenManHeader{Section: "1", Date: &manDate, Source: "Sombra", Manual: "Sombra Manual"}
	var buf bytes.Buffer
	if err := doc.GenMan(cmd, header, &buf); err != nil {
		return nil, err
	}
	// cobra prints a bool option as "--force[=false]"; operators type
	// "--force", as the synopsis and --help show it.
	page := strings.NewReplacer(`\fP[=false]`, `\fP`, `\fP[=true]`, `\fP`).Replace(buf.String())

	// cobra's SYNOPSIS is the bare use line ("sombra-info [flags]").
	start := strings.Index(page, ".SH SYNOPSIS\n")
	end := strings.Index(page, ".SH DESCRIPTION\n")
	if start < 0 || end < start {
		return nil, fmt.Errorf("unexpected man page layout (no SYNOPSIS before DESCRIPTION)")
	}
	page = page[:start] + ".SH SYNOPSIS\n" + synopsis(cmd) + "\n\n" + page[end:]

	extra := ".SH EXIT STATUS\n" + manEscape(exitStatusText(cmd, exit)) + "\n\n" +
		".SH ENVIRONMENT\n" + manEnvironment + "\n" +
		".SH FILES\n" + manFiles + "\n"
	if i := strings.Index(page, ".SH SEE ALSO\n"); i >= 0 {
		page = page[:i] + extra + page[i:]
	} else {
		page += "\n" + extra
	}
	return []byte(page), nil
}

// splitExitStatus cuts an "EXIT STATUS" block (the heading line and the
// indented lines after it) out of a help text.
func splitExitStatus(long string) (rest, exit string) {
	lines := strings.Split(long, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != "EXIT STATUS" {
			continue
		}
		j := i + 1
		var body []string
		for ; j < len(lines); j++ {
			if lines[j] != "" && !strings.HasPrefix(lines[j], " ") {
				break
			}
			if t := strings.TrimSpace(lines[j]); t != "" {
				body = append(body, t)
			}
		}
		out := append(append([]string{}, lines[:i]...), lines[j:]...)
		return strings.TrimRight(strings.Join(out, "\n"), "\n"), strings.Join(body, " ")
	}
	return long, ""
}

// exitStatusText is the command's own EXIT STATUS text, or the scheme every
// tool shares (DESIGN.md, "CLI conventions").
func exitStatusText(cmd *cobra.Command, own string) string {
	return exitStatusCodes(cmd, own) + " " + interruptedText
}

// interruptedText documents ExitInterrupted, the same in every tool, so it
// is added to every page rather than repeated in each command's help.
const interruptedText = "130 interrupted by SIGINT or SIGTERM (Ctrl-C): the operation stopped within a second, " +
	"removed its temporary files and left the database and every earlier output (backups, the catalog, " +
	"an existing restore or salvage target) as they were."

func exitStatusCodes(cmd *cobra.Command, own string) string {
	if own != "" {
		return own
	}
	if cmd.Root().Annotations[annotHealthCodes] != "" {
		return "0 healthy; 1 degraded; 2 unhealthy (including corruption); 3 unknown (the check could not run: usage error, missing file, I/O, database locked)."
	}
	return "0 success; 1 failed (missing file, not a database, I/O); 2 usage error; 3 database busy or locked (see --wait); 4 corruption found."
}

const manEnvironment = `.TP
\fBNO_COLOR\fP
When set (to anything), human output is never coloured (https://no-color.org); so does \-\-no\-color. Colour is only used on a terminal anyway.
.TP
\fBSOMBRA_ENCRYPTION_KEY\fP
Key (hex or base64, 32 bytes) for encrypted databases. With it set, encrypted databases open (plaintext ones open as before); without it an encrypted database is refused with an error saying the key is needed. A malformed key is a usage error (exit 2).
`

const manFiles = `.TP
\fINAME\fP\fB.db\fP
The database file (\-\-db).
.TP
\fINAME\fP\fB.db\-wal\fP
Its write-ahead log: committed transactions not yet checkpointed into the database file. Copy or delete it only together with the database, never alone.
.TP
\fINAME\fP\fB.db\-shm\fP
Shared-memory index of the WAL and the lock state of the processes that have the database open; rebuilt when missing.
.TP
\fINAME\fP\fB.db\-changes\fP
Change log of the pages written since the last backup, used by incremental backups (sombra\-backup \-\-type incremental).
`

// synopsis renders cmd's real synopsis: the use line's own words, each
// local option ([--force], [--wait DURATION]), global options summarised,
// and for a command with subcommands a second line for them.
func synopsis(cmd *cobra.Command) string {
	use := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(cmd.Use), "[flags]"))
	words := strings.Fields(use)
	args := ""
	if len(words) > 1 {
		args = " " + strings.Join(words[1:], " ")
	}
	var opts []string
	cmd.NonInheritedFlags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Name == "help" || strings.Contains(args, "--"+f.Name) {
			return
		}
		opts = append(opts, "["+flagSynopsis(f)+"]")
	})
	if cmd.HasAvailableInheritedFlags() {
		opts = append(opts, `[\fIglobal options\fP]`)
	}
	line := `\fB` + cmd.CommandPath() + `\fP` + manEscape(args)
	if len(opts) > 0 {
		line += " " + strings.Join(opts, " ")
	}
	out := line
	if cmd.HasAvailableSubCommands() {
		out += "\n.br\n" + `\fB` + cmd.CommandPath() + `\fP \fICOMMAND\fP [\fIoptions\fP]`
	}
	return out
}

// flagSynopsis is "--name", "-q|--quiet" or "--name VALUE" in roff.
func flagSynopsis(f *pflag.Flag) string {
	s := `\fB\-\-` + manEscape(f.Name) + `\fP`
	if f.Shorthand != "" {
		s = `\fB\-` + f.Shorthand + `\fP|` + s
	}
	if f.Value.Type() == "bool" {
		return s
	}
	name, _ := pflag.UnquoteUsage(f)
	if name == "" {
		name = "value"
	}
	return s + ` \fI` + manEscape(name) + `\fP`
}

// manEscape keeps roff from reading a leading '.' or a '\' as markup.
func manEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// disableAutoGenTag drops cobra's "Auto generated by spf13/cobra" footer,
// which is noise in a shipped man page.
func disableAutoGenTag(c *cobra.Command) {
	c.DisableAutoGenTag = true
	for _, sub := range c.Commands() {
		disableAutoGenTag(sub)
	}
}
