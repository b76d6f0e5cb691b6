package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/integrity"
)

// VerifyResult reports a verification.
type VerifyResult struct {
	Name         string        `json:"name"`
	OK           bool          `json:"ok"`
	Chain        []string      `json:"chain"` // full backup first
	EndLSN       uint64        `json:"end_lsn"`
	PagesChecked uint64        `json:"pages_checked"` // page records verified
	LogicalHash  string        `json:"logical_hash,omitempty"`
	HashChecked  bool          `json:"hash_checked"`
	HashRecorded bool          `json:"hash_recorded"` // the backup recorded a logical hash (not taken with --no-hash)
	Nodes        uint64        `json:"nodes"`
	Edges        uint64        `json:"edges"`
	Issues       []string      `json:"issues,omitempty"` // integrity problems of the trial restore
	Error        string        `json:"error,omitempty"`
	Warnings     []string      `json:"warnings,omitempty"`
	Time         time.Time     `json:"time"`
	Duration     time.Duration `json:"duration_ns"`
}

// Verify checks backup name in dir: the header and trailer of it and of
// every backup it depends on, the chain links (parent present, same
// database, LSN ranges contiguous), every page record's checksum and every
// page's own checksum, and the body checksums; then it restores the chain
// to a temporary file, opens it with the engine, runs a full integrity
// check, and compares its logical hash with the one recorded. The outcome
// (time and result) is recorded in the catalog. A failure returns the
// result and an error: a *engine.CorruptionError naming the backup file and
// page, ErrBrokenChain, or ErrVerifyFailed; or ErrCannotVerify when the
// trial restore found no room in the temporary directory (Options.TempDir,
// default the system's), which says nothing about the backup and is not
// recorded. Stale trial restores of killed verifications are removed.
func Verify(dir, name string, opts Options) (*VerifyResult, error) {
	return VerifyContext(context.Background(), dir, name, opts)
}

// VerifyContext is Verify, stopped when ctx is cancelled: it then removes
// its trial restore and returns an error matching ctx.Err(), recording
// nothing in the catalog (the backup's last verdict stays).
func VerifyContext(ctx context.Context, dir, name string, opts Options) (*VerifyResult, error) {
	start := time.Now()
	o := opts.withDefaults()
	o = o.withContext(ctx)
	dir, name, err := splitName(dir, name)
	if err != nil {
		return nil, err
	}
	res := &VerifyResult{Name: name, Time: o.Now().UTC()}
	verr := verify(o, dir, name, res)
	res.OK = verr == nil
	if verr != nil {
		res.Error = verr.Error()
	}
	res.Duration = time.Since(start)
	if len(res.Chain) == 0 && errors.Is(verr, engine.ErrNotFound) {
		return res, verr // nothing to record for a backup that does not exist
	}
	if errors.Is(verr, ErrCannotVerify) || o.canceled() != nil {
		return res, verr // says nothing about the backup: keep its last verdict
	}
	cerr := updateCatalog(o, dir, func(list []BackupInfo) {
		for i := range list {
			if list[i].Name == name {
				list[i].Verified = &Verification{Time: res.Time, OK: res.OK, Error: res.Error}
			}
		}
	})
	switch {
	case cerr == nil:
	case errors.Is(cerr, syscall.EROFS) || errors.Is(cerr, syscall.EACCES) || errors.Is(cerr, syscall.EPERM):
		// A read-only backup directory (a mounted snapshot, another
		// user's) can be verified; only the record is lost.
		res.Warnings = append(res.Warnings, fmt.Sprintf("verification not recorded in the catalog (read-only directory): %v", cerr))
	case verr == nil:
		return res, fmt.Errorf("record verification in the catalog: %w", cerr)
	}
	return res, verr
}

func verify(o Options, dir, name string, res *VerifyResult) error {
	if IsRemote(dir) {
		// Verified from a local copy: the download checks each object
		// against the checksum recorded at upload (naming an object
		// altered in the bucket), the trial restore below the rest.
		local, cleanup, err := stageChain(o, dir, name, "verify")
		if err != nil {
			return err
		}
		defer cleanup()
		dir = local
	}
	chain, err := loadChain(o.FS, dir, name)
	if err != nil {
		return err
	}
	for _, l := range chain {
		res.Chain = append(res.Chain, l.name)
	}
	last := chain[len(chain)-1]
	res.EndLSN = last.hdr.EndLSN
	res.HashRecorded = last.hdr.LogicalHash != ""
	tmpDir := o.TempDir
	if tmpDir == "" {
		tmpDir = os.TempDir()
	}
	removeStaleNear(o.FS, tmpDir, name+Ext, "verify")
	need := int64(last.hdr.PageCount) * int64(last.hdr.PageSize)
	if free, err := freeBytes(tmpDir); err == nil && free < need+need/16 {
		return fmt.Errorf("%s has %d bytes free, the trial restore of %s needs %d: %w: %w",
			tmpDir, free, name, need, ErrCannotVerify, syscall.ENOSPC)
	}
	tmp := tempNear(backupPath(tmpDir, name), "verify")
	ro := o
	ro.NewFileID = false
	// Progress: the chain's bytes read by the trial restore, then the
	// restored file's bytes checked by the integrity check.
	var chainBytes int64
	for _, l := range chain {
		chainBytes += l.bytes()
	}
	tr := o.tracker(chainBytes + need)
	ro.Progress = nil
	if o.Progress != nil {
		ro.Progress = func(done, _ int64) { o.Progress(done, chainBytes+need) }
	}
	_, pages, err := restoreChain(ro, chain, tmp)
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("trial restore of %s in %s ran out of space: %w: %w", name, tmpDir, ErrCannotVerify, err)
	}
	if err != nil {
		return err
	}
	defer removeDBFiles(o.FS, tmp)
	res.PagesChecked = pages
	cfg := engine.Config{ReadOnly: true, FS: o.FS, BusyTimeout: o.BusyTimeout}
	if last.hdr.Sealed {
		cfg.Encryption = o.cipher() // nil: the engine's fallback key, if any
	}
	db, err := engine.OpenWithConfig(tmp, cfg)
	if err != nil {
		return fmt.Errorf("trial restore of %s does not open: %w", name, err)
	}
	defer db.Close()
	io := integrity.Options{Full: true}
	if o.Progress != nil {
		io.Progress = func(done, _ int64) { o.Progress(chainBytes+done, chainBytes+need) }
	}
	rep, err := integrity.CheckDBContext(o.ctx, db, io)
	if err := tr.Err(); err != nil {
		return err
	}
	if err != nil {
		return fmt.Errorf("trial restore of %s: integrity check: %w", name, err)
	}
	res.Nodes, res.Edges = rep.Nodes, rep.Edges
	for _, is := range rep.Issues {
		s := fmt.Sprintf("%s %s: %s", is.Severity, is.Kind, is.Description)
		if is.Page != 0 {
			s = fmt.Sprintf("%s %s page %d: %s", is.Severity, is.Kind, is.Page, is.Description)
		}
		res.Issues = append(res.Issues, s)
	}
	if len(rep.Issues) > 0 {
		return fmt.Errorf("trial restore of %s has %d integrity issues (first: %s): %w", name, len(rep.Issues), res.Issues[0], ErrVerifyFailed)
	}
	if want := last.hdr.LogicalHash; want != "" {
		hash := func() (string, error) { return db.LogicalHashContext(o.context()) }
		if last.hdr.LegacyHash {
			hash = db.LegacyLogicalHash
		}
		got, err := hash()
		if cerr := tr.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			return fmt.Errorf("trial restore of %s: %w", name, err)
		}
		res.LogicalHash, res.HashChecked = got, true
		if got != want {
			return fmt.Errorf("trial restore of %s has logical hash %s, the backup recorded %s: %w", name, got, want, ErrVerifyFailed)
		}
	}
	return nil
}

// freeBytes is the space available to this user in dir's file system.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil // field types differ between systems
}
