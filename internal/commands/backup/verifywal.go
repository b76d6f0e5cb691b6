package backup

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sombradb/sombra/engine"
	bk "github.com/sombradb/sombra/engine/backup"
	"github.com/sombradb/sombra/internal/cli"
)

// VerifyWALResult is the --json document of verify --wal.
type VerifyWALResult struct {
	SchemaVersion int    `json:"schema_version"`
	Dir           string `json:"dir"`
	ArchiveDir    string `json:"archive_dir"`
	OK            bool   `json:"ok"`
	// Verdict is "ok", "damaged", or "could not verify" (sealed segments
	// without their key: not a verdict on them).
	Verdict    string       `json:"verdict"`
	Verified   int          `json:"verified"`
	Segments   []WALSegment `json:"segments"`
	Gaps       []string     `json:"gaps"`
	Error      *string      `json:"error"`
	DurationMS float64      `json:"duration_ms"`
}

// RunVerifyWAL verifies the WAL archive of opts.Dir and prints the outcome.
// Sealed segments without their key are "could not verify" (exit 1), never
// reported as damaged.
func RunVerifyWAL(opts *VerifyOptions) error {
	o := opts.Root
	start := o.Clock.Now()
	eo := engineOptions(o)
	eo.TempDir = opts.TmpDir
	v, verr := bk.VerifyArchive(o.Globals.Context(), opts.Dir, eo)
	if v == nil {
		return classify(verr)
	}
	res := VerifyWALResult{SchemaVersion: cli.SchemaVersion, Dir: opts.Dir, ArchiveDir: v.Dir, OK: verr == nil,
		Verified: v.Verified, Segments: walSegments(v.Segments), Gaps: nonNil(v.Gaps), DurationMS: ms(o.Clock.Since(start))}
	res.Verdict = "ok"
	if verr != nil {
		msg := verr.Error()
		res.Error = &msg
		res.Verdict = "could not verify"
		if errors.Is(verr, engine.ErrCorrupt) {
			res.Verdict = "damaged"
		}
	}
	if err := cli.NewPrinter(o.IO, &o.Globals).Result(res, func(h *cli.Human) { verifyWALSummary(h, res) }); err != nil {
		return err
	}
	switch {
	case verr == nil:
		return nil
	case errors.Is(verr, engine.ErrCorrupt):
		return &cli.ExitError{Code: cli.ExitCorrupt, Err: verr}
	case errors.Is(verr, bk.ErrCannotVerify) && errors.Is(verr, bk.ErrKeyRequired):
		return &hintError{msg: fmt.Sprintf("could not verify the sealed segments of %s: key required (set SOMBRA_ENCRYPTION_KEY to the database's key); not a verdict on them", v.Dir), err: verr}
	case errors.Is(verr, bk.ErrCannotVerify):
		return &hintError{msg: fmt.Sprintf("could not verify the sealed segments of %s (not a verdict on them): %s", v.Dir,
			strings.TrimPrefix(verr.Error(), v.Dir+": "+bk.ErrCannotVerify.Error()+": ")), err: verr}
	}
	return verr
}

func verifyWALSummary(h *cli.Human, r VerifyWALResult) {
	result := h.Good("ok")
	switch r.Verdict {
	case "damaged":
		result = h.Bad("FAILED: damaged")
	case "could not verify":
		result = h.Warn("could not verify (key required or another key)")
	}
	sealed := 0
	for _, s := range r.Segments {
		if s.Sealed {
			sealed++
		}
	}
	h.KeyValues([][2]string{
		{"archive", r.ArchiveDir},
		{"result", result},
		{"segments", fmt.Sprintf("%d (%d sealed), %d verified", len(r.Segments), sealed, r.Verified)},
		{"duration", cli.FormatDuration(msDuration(r.DurationMS))},
	})
	for _, s := range r.Segments {
		if s.Error != nil {
			h.Line("%s %s", h.Bad("segment:"), *s.Error)
		}
	}
	for _, g := range r.Gaps {
		h.Line("%s %s", h.Warn("gap:"), g)
	}
	if len(r.Segments) == 0 {
		h.Line("no segments in %s", r.ArchiveDir)
	}
}
