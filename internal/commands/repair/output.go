package repair

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sombradb/sombra/engine/integrity"
	"github.com/sombradb/sombra/internal/cli"
)

// perKind caps the issues of one kind shown to a person: one damaged tree
// page can make every edge into it dangling, and a screen of those hides
// the cause. --json lists every issue.
const perKind = 10

func nonNil(s []integrity.Issue) []integrity.Issue {
	if s == nil {
		return []integrity.Issue{}
	}
	return s
}

func durationMS(opts *Options, start time.Time) float64 {
	return float64(opts.Clock.Since(start).Microseconds()) / 1000
}

func msDuration(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

func issueSummary(critical, errs, warnings int) string {
	if critical+errs+warnings == 0 {
		return "none"
	}
	return fmt.Sprintf("%d (%d critical, %d errors, %d warnings)", critical+errs+warnings, critical, errs, warnings)
}

// issueTable prints issues under a blank line, at most perKind of each kind,
// with a line per kind that was cut short.
func issueTable(h *cli.Human, issues []integrity.Issue) {
	if len(issues) == 0 {
		return
	}
	shown := map[string]int{}
	hidden := map[string]int{}
	var kinds []string
	var rows [][]string
	for _, is := range issues {
		if shown[is.Kind]+hidden[is.Kind] == 0 {
			kinds = append(kinds, is.Kind)
		}
		if shown[is.Kind] >= perKind {
			hidden[is.Kind]++
			continue
		}
		shown[is.Kind]++
		sev := string(is.Severity)
		switch is.Severity {
		case integrity.Critical, integrity.Error:
			sev = h.Bad(sev)
		default:
			sev = h.Warn(sev)
		}
		rows = append(rows, []string{sev, is.Kind, pageCell(is), is.Description})
	}
	h.Line("")
	h.Table([]string{"severity", "kind", "page", "description"}, rows)
	for _, k := range kinds {
		if n := hidden[k]; n > 0 {
			h.Line("... %d more %s issues (--json lists every issue)", n, k)
		}
	}
}

// pageCell shows the page of an issue; page 0 is the header for header and
// checksum issues and means "no page" for the others.
func pageCell(is integrity.Issue) string {
	if is.Page == 0 && is.Kind != "header" && is.Kind != "checksum" {
		return "-"
	}
	return strconv.FormatUint(is.Page, 10)
}

func pageList(pages []uint64, total int) string {
	parts := make([]string, 0, len(pages))
	for _, p := range pages[:min(len(pages), 10)] {
		parts = append(parts, strconv.FormatUint(p, 10))
	}
	s := "page "
	if total > 1 {
		s = "pages "
	}
	s += strings.Join(parts, ", ")
	if total > len(parts) {
		s += ", ..."
	}
	return s
}
