package cli

import (
	"bytes"
	"fmt"
	"runtime"
	"runtime/debug"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// Version, Commit and BuildDate are printed by --version. The Makefile sets
// them with
//
//	-ldflags "-X github.com/sombradb/sombra/internal/cli.Version=v1.2.3
//	          -X github.com/sombradb/sombra/internal/cli.Commit=<sha>
//	          -X github.com/sombradb/sombra/internal/cli.BuildDate=<RFC 3339>"
//
// A plain `go build`/`go install` leaves them empty; the commit and its
// time then come from the VCS stamp Go embeds (runtime/debug.ReadBuildInfo).
var (
	Version   = "dev"
	Commit    = ""
	BuildDate = ""
)

// VersionInfo is the --version --json document.
type VersionInfo struct {
	SchemaVersion int    `json:"schema_version"`
	Tool          string `json:"tool"`
	Version       string `json:"version"`
	Commit        string `json:"commit"`      // "" when unknown
	CommitTime    string `json:"commit_time"` // RFC 3339, "" when unknown
	Modified      bool   `json:"modified"`    // built from a tree with uncommitted changes
	BuildDate     string `json:"build_date"`  // RFC 3339, "" when unknown
	GoVersion     string `json:"go_version"`
	Platform      string `json:"platform"` // GOOS/GOARCH
}

// ReadVersion gathers what is known about the running binary's build.
func ReadVersion(tool string) VersionInfo {
	v := VersionInfo{
		SchemaVersion: StableSchemaVersion,
		Tool:          tool,
		Version:       Version,
		Commit:        Commit,
		BuildDate:     BuildDate,
		GoVersion:     runtime.Version(),
		Platform:      runtime.GOOS + "/" + runtime.GOARCH,
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if v.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v.Version = bi.Main.Version // go install module@version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if v.Commit == "" {
				v.Commit = s.Value
			}
		case "vcs.time":
			v.CommitTime = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// versionText renders --version: JSON under --json, else a first line
// "NAME VERSION" (what scripts grep) and the details under it.
func versionText(cmd *cobra.Command) string {
	v := ReadVersion(cmd.Root().Name())
	if f := cmd.Root().PersistentFlags().Lookup("json"); f != nil && f.Value.String() == "true" {
		var buf bytes.Buffer
		if err := writeJSON(&buf, v); err != nil {
			return err.Error() + "\n"
		}
		return buf.String()
	}
	unknown := func(s string) string {
		if s == "" {
			return "unknown"
		}
		return s
	}
	commit := unknown(v.Commit)
	if v.Modified {
		commit += " (modified)"
	}
	if v.CommitTime != "" {
		commit += " " + v.CommitTime
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%s %s\n", v.Tool, v.Version)
	tw := tabwriter.NewWriter(&buf, 0, 0, 1, ' ', 0)
	fmt.Fprintf(tw, "  commit:\t%s\n", commit)
	fmt.Fprintf(tw, "  built:\t%s\n", unknown(v.BuildDate))
	fmt.Fprintf(tw, "  go:\t%s %s\n", v.GoVersion, v.Platform)
	tw.Flush()
	return buf.String()
}

func init() {
	cobra.AddTemplateFunc("sombraVersion", versionText)
}
