package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/fatih/color"
	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
)

// SchemaVersion is the "schema_version" every --json document carries.
// Bump it only with an incompatible change to a document's fields. 2: keys
// renamed to the shared vocabulary (vocab.go) and timestamps at whole
// seconds.
const SchemaVersion = 2

// StableSchemaVersion is the schema_version of the documents whose keys
// did not change with schema 2: the error document (errors.go) and
// --version --json. Scripts that check it keep working.
const StableSchemaVersion = 1

// Printer renders a command's result: JSON under --json, otherwise a human
// view (tables on a terminal, tab-separated lines in a pipe), nothing human
// under --quiet.
type Printer struct {
	out   io.Writer
	tty   bool
	width int
	json  bool
	quiet bool
	color bool
}

// NewPrinter returns the printer for s configured by g.
func NewPrinter(s IOStreams, g *Globals) *Printer {
	return &Printer{out: s.Out, tty: s.IsTTY, width: s.Width, json: g.JSON, quiet: g.Quiet, color: g.Color(s)}
}

// Result prints v as one indented JSON document under --json, otherwise
// calls human to draw it (unless --quiet). v must encode to a JSON object
// with a "schema_version" field; a result without one is a programming
// error and is refused, so no undocumented document ever ships.
func (p *Printer) Result(v any, human func(h *Human)) error {
	if p.json {
		return writeJSON(p.out, v)
	}
	if p.quiet || human == nil {
		return nil
	}
	h := p.Human()
	human(h)
	return h.err
}

// Human returns a writer for human output, for commands that print
// something besides their result. It ignores --quiet.
func (p *Printer) Human() *Human {
	h := &Human{
		w:     p.out,
		tty:   p.tty,
		width: p.width,
		good:  color.New(color.FgGreen),
		warn:  color.New(color.FgYellow),
		bad:   color.New(color.FgRed, color.Bold),
	}
	// Set every instance explicitly: fatih/color's package-level NoColor
	// is decided from os.Stdout at init and would leak between tests.
	for _, c := range []*color.Color{h.good, h.warn, h.bad} {
		if p.color {
			c.EnableColor()
		} else {
			c.DisableColor()
		}
	}
	return h
}

func writeJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "<", ">" and "&" in paths stay readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encoding result: %w", err)
	}
	var probe struct {
		SchemaVersion *int `json:"schema_version"`
	}
	if err := json.Unmarshal(buf.Bytes(), &probe); err != nil || probe.SchemaVersion == nil {
		return fmt.Errorf("cli: result %T is not a JSON object with schema_version", v)
	}
	var doc any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		return fmt.Errorf("cli: result %T: %w", v, err)
	}
	if err := checkTimestamps(doc); err != nil {
		return fmt.Errorf("cli: result %T: %w", v, err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// Human draws human-readable output. Write errors are remembered and
// returned by Printer.Result, so renderers need no error handling.
type Human struct {
	w               io.Writer
	tty             bool
	width           int // terminal columns; 0: unknown
	good, warn, bad *color.Color
	err             error
}

// Table prints rows under headers: a bordered table on a terminal, or a
// header line and one tab-separated line per row in a pipe (stable for awk
// and cut).
func (h *Human) Table(headers []string, rows [][]string) {
	if h.err != nil {
		return
	}
	if !h.tty {
		h.tsv(headers)
		for _, r := range rows {
			h.tsv(r)
		}
		return
	}
	t := tablewriter.NewTable(h.w, append(h.fit(), tablewriter.WithHeader(headers))...)
	h.render(t, fitCells(headers, rows, h.width))
}

// KeyValues prints a two-column summary: a table on a terminal,
// "key<TAB>value" lines in a pipe.
func (h *Human) KeyValues(pairs [][2]string) {
	if h.err != nil {
		return
	}
	rows := make([][]string, len(pairs))
	for i, p := range pairs {
		rows[i] = []string{p[0], p[1]}
	}
	if !h.tty {
		for _, r := range rows {
			h.tsv(r)
		}
		return
	}
	h.render(tablewriter.NewTable(h.w, h.fit()...), fitCells(nil, rows, h.width))
}

// TTY reports whether the output is a terminal (false: a pipe or cron).
func (h *Human) TTY() bool { return h.tty }

// Line prints one formatted line.
func (h *Human) Line(format string, args ...any) {
	if h.err == nil {
		_, h.err = fmt.Fprintf(h.w, format+"\n", args...)
	}
}

// Bytes renders a size for a person on a terminal ("1.5 MiB") and as the
// exact byte count in a pipe ("1572864"), so awk and sort -n read it and
// nothing is rounded away.
func (h *Human) Bytes(n int64) string {
	if !h.tty {
		return strconv.FormatInt(n, 10)
	}
	return FormatBytes(n)
}

// BytesExact is Bytes with the exact count too on a terminal: "1.5 MiB
// (1572864 bytes)".
func (h *Human) BytesExact(n int64) string {
	if !h.tty {
		return strconv.FormatInt(n, 10)
	}
	return FormatBytesExact(n)
}

// Rate renders bytes per second: "12.5 MiB/s" on a terminal, the integer
// count of bytes per second in a pipe.
func (h *Human) Rate(bytesPerSec int64) string {
	if !h.tty {
		return strconv.FormatInt(bytesPerSec, 10)
	}
	return FormatBytes(bytesPerSec) + "/s"
}

// Good, Warn and Bad colour s green, yellow and bold red when colour is on,
// and return it unchanged otherwise.
func (h *Human) Good(s string) string { return h.good.Sprint(s) }
func (h *Human) Warn(s string) string { return h.warn.Sprint(s) }
func (h *Human) Bad(s string) string  { return h.bad.Sprint(s) }

// fit: on a terminal of known width, tables are no wider than it. Long
// cells (messages, paths) are wrapped by fitCells, at word boundaries
// within their column, rather than spilling past the right edge, where the
// terminal would fold every line and scramble the borders; tablewriter's
// own wrapping is off, as it does not use the width it is given well.
func (h *Human) fit() []tablewriter.Option {
	if h.width <= 0 {
		return nil
	}
	return []tablewriter.Option{tablewriter.WithRowAutoWrap(tw.WrapNone), tablewriter.WithHeaderAutoWrap(tw.WrapNone)}
}

func (h *Human) render(t *tablewriter.Table, rows [][]string) {
	for _, r := range rows {
		if err := t.Append(r); err != nil {
			h.err = err
			return
		}
	}
	h.err = t.Render()
}

// tsv writes one tab-separated line; tabs and newlines inside a cell would
// break the line structure, so they become spaces.
func (h *Human) tsv(cells []string) {
	clean := make([]string, len(cells))
	for i, c := range cells {
		clean[i] = strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, c)
	}
	if h.err == nil {
		_, h.err = fmt.Fprintln(h.w, strings.Join(clean, "\t"))
	}
}
