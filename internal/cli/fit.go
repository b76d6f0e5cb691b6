package cli

import (
	"regexp"
	"strings"

	"github.com/olekukonko/tablewriter/pkg/twwidth"
)

// minColumn is the narrowest a column is squeezed to; below that a wrapped
// message is more line breaks than text.
const minColumn = 8

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// fitCells wraps the cells of headers and rows so that a bordered table of
// them is at most width columns wide: each column keeps its natural width
// when all fit, otherwise the widest columns are capped at one common
// width (the largest that fits) and their cells are word-wrapped, words
// longer than the column broken. Nothing is cut. width <= 0 changes
// nothing. Colour is dropped from a cell only when it has to be wrapped.
func fitCells(headers []string, rows [][]string, width int) [][]string {
	n := len(headers)
	for _, r := range rows {
		n = max(n, len(r))
	}
	if width <= 0 || n == 0 {
		return rows
	}
	natural := make([]int, n)
	measure := func(cells []string, upper bool) {
		for i, c := range cells {
			if upper {
				c = strings.ToUpper(c) // tablewriter prints headers in capitals
			}
			for _, line := range strings.Split(c, "\n") {
				natural[i] = max(natural[i], twwidth.Width(line))
			}
		}
	}
	measure(headers, true)
	for _, r := range rows {
		measure(r, false)
	}
	avail := width - (3*n + 1) // "│ " before each cell, " " after, the last "│"
	if sum(natural) <= avail {
		return rows
	}
	limit := 0
	for c := maxOf(natural); c >= minColumn; c-- {
		total := 0
		for _, w := range natural {
			total += min(w, c)
		}
		if total <= avail {
			limit = c
			break
		}
	}
	if limit == 0 {
		limit = minColumn // too narrow even so: wrap at the minimum and let the terminal fold
	}
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = make([]string, len(r))
		for j, c := range r {
			if natural[j] > limit {
				c = wrapCell(c, limit)
			}
			out[i][j] = c
		}
	}
	return out
}

// wrapCell word-wraps s to lines of at most w columns, breaking words
// longer than w.
func wrapCell(s string, w int) string {
	plain := ansi.ReplaceAllString(s, "")
	if twwidth.Width(plain) <= w && !strings.Contains(plain, "\n") {
		return s
	}
	var lines []string
	for _, para := range strings.Split(plain, "\n") {
		line := ""
		for _, word := range strings.Fields(para) {
			for twwidth.Width(word) > w { // break a long word (a path)
				if line != "" {
					lines = append(lines, line)
					line = ""
				}
				r := []rune(word)
				k := min(w, len(r))
				lines = append(lines, string(r[:k]))
				word = string(r[k:])
			}
			switch {
			case word == "":
			case line == "":
				line = word
			case twwidth.Width(line)+1+twwidth.Width(word) <= w:
				line += " " + word
			default:
				lines = append(lines, line)
				line = word
			}
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

func sum(xs []int) int {
	t := 0
	for _, x := range xs {
		t += x
	}
	return t
}

func maxOf(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
