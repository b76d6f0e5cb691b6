package repair

import (
	"cmp"
	"slices"

	"github.com/sombradb/sombra/engine/integrity"
)

// sortIssues puts issues in a stable order for people and golden files:
// the most severe first, then by kind, page and description (numbers in
// descriptions compare as numbers). The integrity checker finds some of
// them while ranging over maps, so its own order varies between runs.
func sortIssues(issues []integrity.Issue) {
	slices.SortStableFunc(issues, func(a, b integrity.Issue) int {
		return cmp.Or(cmp.Compare(rank(a.Severity), rank(b.Severity)), cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.Page, b.Page), naturalCompare(a.Description, b.Description))
	})
}

func rank(s integrity.Severity) int {
	switch s {
	case integrity.Critical:
		return 0
	case integrity.Error:
		return 1
	}
	return 2
}

// naturalCompare compares strings with runs of digits compared by value.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := trimZeros(a[:da]), trimZeros(b[:db])
			if c := cmp.Or(cmp.Compare(len(na), len(nb)), cmp.Compare(na, nb)); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}
