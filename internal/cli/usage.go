package cli

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagUsages is pflag's FlagUsages with bool flags shown as operators type
// them: "--force", not "--force[=true|false]" (pflag v1.1 marks every bool
// flag so). The usage column is realigned after the cut.
func flagUsages(fs *pflag.FlagSet) string {
	type row struct{ left, right string }
	var rows []row
	width := 0
	for _, line := range strings.Split(strings.TrimRight(fs.FlagUsages(), "\n"), "\n") {
		line = strings.Replace(line, "[=true|false]", "", 1)
		trimmed := strings.TrimLeft(line, " ")
		if !strings.HasPrefix(trimmed, "-") { // continuation of a multi-line usage
			rows = append(rows, row{"", strings.TrimSpace(line)})
			continue
		}
		indent := len(line) - len(trimmed)
		left, right := line, ""
		if i := strings.Index(line[indent:], "  "); i >= 0 {
			left, right = line[:indent+i], strings.TrimLeft(line[indent+i:], " ")
		}
		rows = append(rows, row{left, right})
		width = max(width, len(left))
	}
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(r.left + strings.Repeat(" ", width-len(r.left)+3) + r.right + "\n")
	}
	return b.String()
}

func init() {
	cobra.AddTemplateFunc("sombraFlagUsages", flagUsages)
}

// setUsageTemplate makes cmd (and its subcommands, which inherit the
// template) list flags with flagUsages.
func setUsageTemplate(cmd *cobra.Command) {
	t := cmd.UsageTemplate()
	t = strings.ReplaceAll(t, "{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}", "{{sombraFlagUsages .LocalFlags | trimTrailingWhitespaces}}")
	t = strings.ReplaceAll(t, "{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}", "{{sombraFlagUsages .InheritedFlags | trimTrailingWhitespaces}}")
	cmd.SetUsageTemplate(t)
}
