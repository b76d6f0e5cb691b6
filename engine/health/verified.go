package health

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/integrity"
	"github.com/sombradb/sombra/engine/internal/changelog"
	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/handle"
	"github.com/sombradb/sombra/engine/vfs"
	"github.com/sombradb/sombra/internal/units"
)

// VerifiedSuffix names the sidecar NAME.db-verified in which the health
// check records how far the database file has been verified. The check
// never writes the database file itself; the sidecar is advisory: absent,
// damaged or describing another file (compacted or restored since) it is
// ignored and the next check verifies every page.
const VerifiedSuffix = "-verified"

// verified is the sidecar's JSON.
type verified struct {
	FileID uint64 `json:"file_id"`
	// LSN: every page the database file received from a checkpoint of a
	// transaction up to LSN was verified at Time.
	LSN  uint64    `json:"lsn"`
	Time time.Time `json:"time"`
	// FullTime is when every page was last verified.
	FullTime time.Time `json:"full_time"`
}

func readVerified(fsys vfs.FS, path string, fileID uint64) (verified, bool) {
	var v verified
	b, err := vfs.ReadFile(fsys, path+VerifiedSuffix, 1<<20) // a line of JSON
	if err != nil || json.Unmarshal(b, &v) != nil || v.FileID != fileID || v.FullTime.IsZero() {
		return verified{}, false
	}
	return v, true
}

// writeVerified replaces the sidecar atomically and durably: a torn or
// lost sidecar would only cost a full verification, but a half-written one
// must never be read as a valid record.
func writeVerified(fsys vfs.FS, path string, v verified) error {
	name := path + VerifiedSuffix
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := vfs.WriteFileAtomic(fsys, name, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("record verification in %s: %w", name, err)
	}
	return nil
}

// changedSince returns the pages of the database file that checkpoints
// wrote after LSN after, with the pages of the snapshot's WAL frames, and
// upto, the LSN through which the database file holds every transaction
// (what a new record may claim as verified). covered is false when the
// change log does not reach back to after: then only a full pass is
// complete (or useLog is false: the caller verifies every page anyway).
func changedSince(db *engine.DB, after common.LSN, useLog bool) (pages []common.PageID, upto common.LSN, covered bool, err error) {
	p := handle.Pager(db)
	snap, err := p.BeginRead()
	if err != nil {
		return nil, 0, false, err
	}
	defer snap.Close()
	meta, err := snap.Meta()
	if err != nil {
		return nil, 0, false, err
	}
	frames := snap.Frames()
	upto = meta.LastLSN // as in backup's changedPages: (.., upto] is in the file
	if len(frames) > 0 {
		upto = frames[0].LSN - 1
	}
	set := map[common.PageID]struct{}{}
	for _, f := range frames {
		set[f.Page] = struct{}{}
	}
	if !useLog || after > upto {
		// An LSN behind the record: the file was restored from an older
		// backup (which keeps its file id) and its pages are not the ones
		// verified.
		return nil, upto, false, nil
	}
	if after < upto {
		ch, ok, err := changelog.Changed(vfs.OS, p.Path(), p.FileID(), after, upto)
		if err != nil || !ok {
			return nil, upto, false, err
		}
		for _, pg := range ch {
			set[pg] = struct{}{}
		}
	}
	for pg := range set {
		if uint64(pg) < meta.PageCount {
			pages = append(pages, pg)
		}
	}
	slices.Sort(pages)
	return pages, upto, true, nil
}

// checkPages verifies the checksums of pages on a snapshot and returns the
// damaged ones as issues.
func checkPages(db *engine.DB, pages []common.PageID) ([]integrity.Issue, error) {
	snap, err := handle.Pager(db).BeginRead()
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	var issues []integrity.Issue
	for _, id := range pages {
		if _, err := snap.Page(id); err != nil {
			if !errors.Is(err, common.ErrCorrupt) {
				return nil, fmt.Errorf("read page %d: %w", id, err)
			}
			issues = append(issues, integrity.Issue{Severity: integrity.Critical, Kind: "checksum", Page: uint64(id),
				Description: err.Error()})
		}
	}
	return issues, nil
}

// plan is what a check verifies beyond integrity's sample.
type plan struct {
	fs     vfs.FS // the database's
	path   string
	fileID uint64
	prev   verified
	ok     bool            // prev is a valid record of this file
	full   bool            // verify every page
	pages  []common.PageID // pages written since prev.LSN (when !full)
	upto   common.LSN      // what a clean pass may record as verified
}

func planVerification(db *engine.DB, opts Options) (*plan, error) {
	p := handle.Pager(db)
	pl := &plan{path: p.Path(), fileID: p.FileID(), fs: db.Config().FS}
	// Keep the change log from now on, so that the next check knows which
	// pages changed (the backup package starts it at the first backup).
	// Before the snapshot below: every checkpoint after it is recorded. It
	// is a sidecar; in a directory we cannot write the check just stays
	// complete by verifying every page.
	_ = changelog.Enable(pl.fs, p.Path(), p.FileID())
	pl.prev, pl.ok = readVerified(pl.fs, pl.path, pl.fileID)
	var covered bool
	var err error
	pl.pages, pl.upto, covered, err = changedSince(db, common.LSN(pl.prev.LSN), pl.ok && !opts.Deep)
	if err != nil {
		return nil, err
	}
	pl.full = opts.Deep || !covered
	if pl.full {
		pl.pages = nil
	}
	return pl, nil
}

// record writes the sidecar after a clean pass and reports the age of the
// last full verification.
func (pl *plan) record(opts Options, clean bool) Check {
	now := opts.Now().UTC()
	c := Check{Name: CheckFullVerify, Threshold: num(opts.FullVerifyAge.Seconds()), Unit: "seconds"}
	last := time.Time{}
	if pl.ok {
		last = pl.prev.FullTime
	}
	if pl.full {
		last = now // verified now, whatever it found (page_checksums says)
	}
	var note string
	if clean {
		if !last.IsZero() {
			err := writeVerified(pl.fs, pl.path, verified{FileID: pl.fileID, LSN: uint64(pl.upto), Time: now, FullTime: last})
			if err != nil {
				note = "; " + err.Error()
			}
		}
	}
	if last.IsZero() {
		c.Status = Degraded
		c.Message = "no full verification of every page recorded" + note
		c.Remedy = RemedyDeepCheck
		return c
	}
	age := max(now.Sub(last), 0)
	c.Value = num(float64(int64(age.Seconds())))
	c.Message = fmt.Sprintf("every page last verified %s ago (threshold %s)", units.Age(age), units.Age(opts.FullVerifyAge)) + note
	if age > opts.FullVerifyAge {
		c.Status, c.Remedy = Degraded, RemedyDeepCheck
	}
	return c
}

// mergeIssues adds the issues of b whose pages a does not list yet (the
// sample and the changed pages may overlap).
func mergeIssues(a, b []integrity.Issue) []integrity.Issue {
	seen := map[uint64]bool{}
	for _, is := range a {
		seen[is.Page] = true
	}
	for _, is := range b {
		if !seen[is.Page] {
			a = append(a, is)
		}
	}
	return a
}
