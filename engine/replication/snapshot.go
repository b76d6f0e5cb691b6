package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/handle"
	"github.com/sombradb/sombra/engine/vfs"
)

// SnapshotInfo describes the snapshot in the object store: a consistent
// copy of every page of the database as of LSN, compressed, with the
// logical hash a restore must reproduce.
type SnapshotInfo struct {
	File     uint64
	LSN      uint64
	PageSize int
	Pages    uint64
	Hash     string
	Trimmed  uint64 // stream sequences below this were purged after it was stored (0: none)
}

func (s SnapshotInfo) metadata() map[string]string {
	return map[string]string{"file": hex64(s.File), "lsn": strconv.FormatUint(s.LSN, 10),
		"page_size": strconv.Itoa(s.PageSize), "pages": strconv.FormatUint(s.Pages, 10), "hash": s.Hash}
}

func parseSnapshotMeta(m map[string]string) (SnapshotInfo, error) {
	var s SnapshotInfo
	var err error
	if s.File, err = strconv.ParseUint(m["file"], 16, 64); err != nil {
		return s, fmt.Errorf("snapshot metadata: file %q", m["file"])
	}
	if s.LSN, err = strconv.ParseUint(m["lsn"], 10, 64); err != nil {
		return s, fmt.Errorf("snapshot metadata: lsn %q", m["lsn"])
	}
	if s.PageSize, err = strconv.Atoi(m["page_size"]); err != nil || s.PageSize < 1024 {
		return s, fmt.Errorf("snapshot metadata: page_size %q", m["page_size"])
	}
	if s.Pages, err = strconv.ParseUint(m["pages"], 10, 64); err != nil || s.Pages == 0 {
		return s, fmt.Errorf("snapshot metadata: pages %q", m["pages"])
	}
	if s.Hash = m["hash"]; len(s.Hash) != 64 {
		return s, fmt.Errorf("snapshot metadata: hash %q", s.Hash)
	}
	return s, nil
}

// snapshotInfo returns the stored snapshot's description, nil if none.
func (n *Node) snapshotInfo(ctx context.Context) (*SnapshotInfo, error) {
	oi, err := n.obs.GetInfo(ctx, snapObject)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot %s/%s: %w", n.cfg.snapBucket(), snapObject, err)
	}
	s, err := parseSnapshotMeta(oi.Metadata)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %v: %w", n.cfg.snapBucket(), snapObject, err, ErrSnapshot)
	}
	return &s, nil
}

// snapshotLoop stores a snapshot at once if there is none of this
// database, then every SnapshotInterval.
func (n *Node) snapshotLoop(ctx context.Context) {
	if s, err := n.snapshotInfo(ctx); err != nil || s == nil || s.File != n.fileID {
		if _, err := n.Snapshot(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("snapshot", "err", err)
		}
	}
	if n.cfg.SnapshotInterval < 0 {
		return
	}
	t := time.NewTicker(n.cfg.SnapshotInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := n.Snapshot(ctx); err != nil && ctx.Err() == nil {
				n.log.Error("snapshot", "err", err)
			}
		}
	}
}

// Snapshot stores a snapshot of the database (primary only) and trims the
// stream behind it: messages before the snapshot's own transaction are
// purged (that one is kept, so the stream never looks empty).
func (n *Node) Snapshot(ctx context.Context) (*SnapshotInfo, error) {
	n.mu.Lock()
	primary := n.role == rolePrimary
	n.mu.Unlock()
	if !primary {
		return nil, fmt.Errorf("snapshot: %s is not the primary: %w", n.cfg.Node, engine.ErrNotPrimary)
	}
	snap, err := handle.Pager(n.db).BeginRead()
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	meta, err := snap.Meta()
	if err != nil {
		return nil, err
	}
	hash, err := handle.SnapshotLogicalHash(context.Background(), n.db, snap)
	if err != nil {
		return nil, fmt.Errorf("snapshot: logical hash: %w", err)
	}
	info := SnapshotInfo{File: meta.FileID, LSN: uint64(meta.LastLSN), PageSize: int(meta.PageSize), Pages: meta.PageCount, Hash: hash}
	pr, pw := io.Pipe()
	go func() {
		w := s2.NewWriter(pw)
		var err error
		for id := uint64(0); id < meta.PageCount && err == nil; id++ {
			var b []byte
			if b, err = snap.Page(common.PageID(id)); err == nil {
				_, err = w.Write(b)
			}
		}
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		pw.CloseWithError(err)
	}()
	if _, err := n.obs.Put(ctx, jetstream.ObjectMeta{Name: snapObject, Metadata: info.metadata()}, pr); err != nil {
		pr.CloseWithError(err)
		return nil, fmt.Errorf("store snapshot at LSN %d: %w", info.LSN, err)
	}
	if seq, err := n.findSeq(ctx, info.LSN); err != nil {
		n.log.Warn("trim the stream: find the snapshot's transaction", "lsn", info.LSN, "err", err)
	} else if seq > 0 {
		if err := n.stream.Purge(ctx, jetstream.WithPurgeSequence(seq)); err != nil {
			n.log.Warn("trim the stream", "below", seq, "err", err)
		} else {
			info.Trimmed = seq
		}
	}
	n.log.Info("snapshot stored", "lsn", info.LSN, "pages", info.Pages, "trimmed_below", info.Trimmed)
	return &info, nil
}

// txAt returns the first transaction message at or after seq (up to the
// stream's last): its sequence, LSN and part.
func (n *Node) txAt(ctx context.Context, seq, last uint64) (uint64, msgInfo, bool, error) {
	for ; seq <= last; seq++ {
		m, err := n.stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return 0, msgInfo{}, false, err
		}
		mi, err := parseHeader(m.Header)
		if err != nil {
			return 0, msgInfo{}, false, fmt.Errorf("message %d: %v: %w", seq, err, ErrForeignStream)
		}
		if mi.kind == kindTx {
			return seq, mi, true, nil
		}
	}
	return 0, msgInfo{}, false, nil
}

// findSeq returns the sequence of the first part of transaction lsn, 0
// if the stream does not hold it. Messages are in LSN order: a binary
// search over the stream.
func (n *Node) findSeq(ctx context.Context, lsn uint64) (uint64, error) {
	info, err := n.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	lo, hi := info.State.FirstSeq, info.State.LastSeq+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		_, mi, ok, err := n.txAt(ctx, mid, info.State.LastSeq)
		if err != nil {
			return 0, err
		}
		if !ok || mi.lsn >= lsn {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	seq, mi, ok, err := n.txAt(ctx, lo, info.State.LastSeq)
	if err != nil || !ok || mi.lsn != lsn || mi.part != 1 {
		return 0, err
	}
	return seq, nil
}

// streamBounds describes the transactions the stream holds.
type streamBounds struct {
	file              uint64 // 0: no message
	firstLSN, lastLSN uint64 // complete transactions; 0: none
}

func (n *Node) bounds(ctx context.Context) (streamBounds, error) {
	var b streamBounds
	info, err := n.stream.Info(ctx)
	if err != nil {
		return b, err
	}
	if info.State.Msgs == 0 {
		return b, nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := n.stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return b, err
		}
		mi, err := parseHeader(m.Header)
		if err != nil {
			return b, fmt.Errorf("stream %s message %d: %v: %w", n.cfg.stream(), seq, err, ErrForeignStream)
		}
		b.file = mi.file
		break
	}
	_, first, ok, err := n.txAt(ctx, info.State.FirstSeq, info.State.LastSeq)
	if err != nil || !ok {
		return b, err
	}
	b.firstLSN = first.lsn
	if first.part != 1 {
		b.firstLSN++
	}
	// The last transaction: walk back over markers and a torn tail.
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0; seq-- {
		m, err := n.stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return b, err
		}
		mi, err := parseHeader(m.Header)
		if err != nil || mi.kind != kindTx {
			continue
		}
		b.lastLSN = mi.lsn
		if mi.part != mi.of {
			b.lastLSN--
		}
		break
	}
	return b, nil
}

// localState reads a database file's id, last LSN and state digest
// without changing it.
func localState(fsys vfs.FS, path string) (file, lsn uint64, state uint32, err error) {
	db, err := engine.OpenWithConfig(path, engine.Config{ReadOnly: true, FS: fsys})
	if err != nil {
		return 0, 0, 0, err
	}
	defer db.Close()
	lsn, state, err = localDigest(db)
	return handle.Pager(db).FileID(), lsn, state, err
}

// divergedAt reports whether the stream holds transaction lsn with
// another resulting state than state.
func (n *Node) divergedAt(ctx context.Context, lsn uint64, state uint32) (bool, error) {
	if lsn == 0 {
		return false, nil
	}
	seq, err := n.findSeq(ctx, lsn)
	if err != nil || seq == 0 {
		return false, err
	}
	m, err := n.stream.GetMsg(ctx, seq)
	if err != nil {
		return false, err
	}
	mi, err := parseHeader(m.Header)
	if err != nil {
		return false, err
	}
	return mi.state != 0 && mi.state != state, nil
}

// prepareFile decides whether the local file can follow the stream, and
// restores the snapshot into it when not.
func (n *Node) prepareFile(ctx context.Context) error {
	snap, err := n.snapshotInfo(ctx)
	if err != nil {
		return err
	}
	b, err := n.bounds(ctx)
	if err != nil {
		return fmt.Errorf("read stream %s: %w", n.cfg.stream(), err)
	}
	if snap != nil && b.file != 0 && snap.File != b.file {
		return fmt.Errorf("snapshot is of database %016x but stream %s of %016x: %w", snap.File, n.cfg.stream(), b.file, ErrForeignStream)
	}
	if n.exists(n.path) {
		file, lsn, state, err := localState(n.fs, n.path)
		if err != nil {
			return err
		}
		if (snap != nil && snap.File != file) || (b.file != 0 && b.file != file) {
			theirs := b.file
			if snap != nil {
				theirs = snap.File
			}
			return fmt.Errorf("%s is database %016x but %s replicates database %016x; nothing was changed: %w",
				n.path, file, n.cfg.stream(), theirs, ErrForeignStream)
		}
		top := b.lastLSN
		if snap != nil {
			top = max(top, snap.LSN)
		}
		diverged := false
		if b.file == file {
			if diverged, err = n.divergedAt(ctx, lsn, state); err != nil {
				return fmt.Errorf("compare with stream %s: %w", n.cfg.stream(), err)
			}
		}
		why := ""
		switch {
		case diverged:
			why = fmt.Sprintf("its LSN %d is not the stream's LSN %d: it diverged (a primary that lost commits it never published)", lsn, lsn)
		case n.exists(n.path + divergedSuffix):
			why = "it was a primary whose last commits were not replicated"
		case b.firstLSN > 0 && lsn+1 < b.firstLSN:
			why = fmt.Sprintf("it is at LSN %d and the stream starts at LSN %d", lsn, b.firstLSN)
		case b.firstLSN == 0 && snap != nil && lsn < snap.LSN:
			why = fmt.Sprintf("it is at LSN %d, the stream holds no transaction and the snapshot is at LSN %d", lsn, snap.LSN)
		case (b.file != 0 || snap != nil) && lsn > top:
			why = fmt.Sprintf("it is at LSN %d, past the stream's last LSN %d: it diverged", lsn, top)
		}
		if why == "" {
			return nil
		}
		if snap == nil {
			return fmt.Errorf("%s must be restored (%s) but %s holds no snapshot: %w", n.path, why, n.cfg.snapBucket(), ErrSnapshot)
		}
		n.log.Warn("restoring from the snapshot", "path", n.path, "why", why)
		return n.restore(ctx, *snap)
	}
	if snap == nil {
		if n.cfg.Role == Primary && b.file == 0 {
			return nil // the first primary of a new set creates the database
		}
		for snap == nil {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s does not exist and %s holds no snapshot to start a replica from (is the primary up?): %w",
					n.path, n.cfg.snapBucket(), ErrSnapshot)
			case <-time.After(100 * time.Millisecond):
			}
			if snap, err = n.snapshotInfo(ctx); err != nil {
				return err
			}
		}
	}
	return n.restore(ctx, *snap)
}

// restore downloads the snapshot into a temporary file, verifies it (page
// count, file id, LSN and logical hash as recorded), and only then puts it
// in place, keeping an existing file aside. A snapshot that fails
// verification changes nothing. Every step goes through the database's
// file layer (engine.Config.FS).
func (n *Node) restore(ctx context.Context, s SnapshotInfo) error {
	tmp := n.path + ".replica-restore"
	clean := func(p string) {
		for _, f := range []string{p, p + "-wal", p + "-shm"} {
			_ = n.fs.Remove(f)
		}
	}
	clean(tmp)
	if err := n.download(ctx, tmp, s); err != nil {
		clean(tmp)
		return err
	}
	db, err := engine.OpenWithConfig(tmp, engine.Config{ReadOnly: true, FS: n.fs})
	if err != nil {
		clean(tmp)
		return fmt.Errorf("snapshot at LSN %d does not open: %w: %w", s.LSN, err, ErrSnapshot)
	}
	lsn, err := db.LastLSN()
	file := handle.Pager(db).FileID()
	var hash string
	if err == nil {
		hash, err = db.LogicalHash()
	}
	db.Close()
	if err == nil && (lsn != s.LSN || file != s.File || hash != s.Hash) {
		err = fmt.Errorf("restored LSN %d, file %016x, hash %s; the snapshot records LSN %d, file %016x, hash %s", lsn, file, hash, s.LSN, s.File, s.Hash)
	}
	if err != nil {
		clean(tmp)
		return fmt.Errorf("snapshot fails verification: %v: %w", err, ErrSnapshot)
	}
	_ = n.fs.Remove(tmp + "-wal")
	_ = n.fs.Remove(tmp + "-shm")
	if err := n.install(tmp); err != nil {
		clean(tmp)
		return err
	}
	_ = n.fs.Remove(n.path + divergedSuffix)
	n.log.Info("restored from snapshot", "path", n.path, "lsn", s.LSN)
	return nil
}

func (n *Node) download(ctx context.Context, tmp string, s SnapshotInfo) error {
	res, err := n.obs.Get(ctx, snapObject)
	if err != nil {
		return fmt.Errorf("download snapshot: %w", err)
	}
	defer res.Close()
	f, err := n.fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	got, err := io.Copy(io.NewOffsetWriter(f, 0), s2.NewReader(res))
	if err != nil {
		return fmt.Errorf("download snapshot: %v: %w", err, ErrSnapshot)
	}
	if want := int64(s.Pages) * int64(s.PageSize); got != want {
		return fmt.Errorf("snapshot holds %d bytes, its metadata says %d pages of %d: %w", got, s.Pages, s.PageSize, ErrSnapshot)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// install puts the verified snapshot tmp in place of the database. An
// existing database is kept aside (NAME.replaced-N) and stays in place,
// whole with its WAL, until the snapshot replaces it in one rename: it
// gets its second name by a link first where the file system can, and
// its WAL and shared-memory file follow it once the rename is durable
// (until then the WAL cannot be read as the snapshot's: its header names
// the old file's id). A power cut leaves the old database or the new one
// in place, never neither.
func (n *Node) install(tmp string) error {
	aside, moved := "", false
	if n.exists(n.path) {
		aside = fmt.Sprintf("%s.replaced-%d", n.path, time.Now().UnixNano())
		err := errors.ErrUnsupported
		if l, ok := n.fs.(vfs.Linker); ok {
			err = l.Link(n.path, aside)
		}
		if errors.Is(err, errors.ErrUnsupported) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) {
			// No hard links here: the old file is moved aside, and a
			// cut before the rename below leaves no database in place
			// (the next open restores the snapshot again).
			err, moved = n.fs.Rename(n.path, aside), true
		}
		if err != nil {
			return fmt.Errorf("keep %s aside: %w", n.path, err)
		}
	}
	if err := n.fs.Rename(tmp, n.path); err != nil {
		switch {
		case moved:
			_ = n.fs.Rename(aside, n.path)
		case aside != "":
			_ = n.fs.Remove(aside) // the link: the database is still in place
		}
		return err
	}
	if err := vfs.SyncParent(n.fs, n.path); err != nil {
		return err
	}
	if aside == "" {
		return nil
	}
	for _, suf := range []string{"-wal", "-shm"} {
		if err := n.fs.Rename(n.path+suf, aside+suf); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("move %s aside: %w", n.path+suf, err)
		}
	}
	if err := vfs.SyncParent(n.fs, n.path); err != nil {
		return err
	}
	n.log.Warn("replaced database kept", "path", aside)
	return nil
}
