package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sombradb/sombra/engine/internal/dirlock"
	"github.com/sombradb/sombra/engine/internal/walarchive"
	"github.com/sombradb/sombra/engine/vfs"
)

// WAL archiving into object storage.
//
// Every connection of the database, in every process, archives the WAL
// into a directory before resetting the log (engine.DB.SetWALArchiveDir):
// that has to be a local directory, since a commit must not wait for the
// network. When the backup directory is on S3, that directory is a local
// spool beside the database (SpoolSuffix), whose remote.json names the
// bucket's archive (s3://bucket/prefix/wal). Segments are immutable once
// written, so shipping them is uploading each segment the bucket does not
// have yet: ArchiveWAL (sombra-backup archive-wal) does it, and so does
// every backup into the bucket. Point-in-time restore and prune read the
// bucket's copy.

// SpoolSuffix names the local WAL archive spool of a database (DB +
// SpoolSuffix) whose archive is shipped to object storage.
const SpoolSuffix = ".walspool"

// remoteFile in a spool names the remote archive it is shipped to.
const remoteFile = "remote.json"

type remoteArchive struct {
	URL string `json:"url"`
}

// readRemote returns the remote archive a local archive directory is
// shipped to ("" when none).
func readRemote(fs vfs.FS, dir string) string {
	if dir == "" || IsRemote(dir) {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(dir, remoteFile))
	if err != nil {
		return ""
	}
	var r remoteArchive
	if json.Unmarshal(b, &r) != nil || !IsRemote(r.URL) {
		return ""
	}
	return r.URL
}

// spoolFor prepares the local spool of the manager's database for the
// remote archive url and returns it.
func (m *BackupManager) spoolFor(url string) (string, error) {
	o := m.opts
	st, err := o.store(url)
	if err != nil {
		return "", err
	}
	if err := st.(*s3Store).checkBucket(url); err != nil {
		return "", err
	}
	spool := m.db.Path() + SpoolSuffix
	if abs, err := filepath.Abs(spool); err == nil {
		spool = abs
	}
	if err := vfs.MkdirAllDurable(o.FS, spool); err != nil {
		return "", fmt.Errorf("create WAL spool %s: %w", spool, err)
	}
	if readRemote(o.FS, spool) != url {
		b, _ := json.Marshal(remoteArchive{URL: url})
		if err := vfs.WriteFileAtomic(o.FS, filepath.Join(spool, remoteFile), append(b, '\n'), 0o644); err != nil {
			return "", err
		}
	}
	return spool, nil
}

// shipArchive uploads the segments of the local archive dir that its
// remote archive does not hold yet, and returns their names.
func shipArchive(o Options, dir string) ([]string, error) {
	url := readRemote(o.FS, dir)
	if url == "" {
		return nil, nil
	}
	st, err := o.store(url)
	if err != nil {
		return nil, err
	}
	s3 := st.(*s3Store)
	have := map[string]int64{}
	ents, err := o.FS.ReadDir(url)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range ents {
		if info, err := e.Info(); err == nil {
			have[e.Name()] = info.Size()
		}
	}
	segs, _, err := walarchive.New(o.FS, dir).Segments()
	if err != nil {
		return nil, err
	}
	var sent []string
	newest := map[uint64]walarchive.Segment{}
	for _, sg := range segs {
		if n, ok := newest[sg.FileID]; !ok || sg.LastLSN > n.LastLSN {
			newest[sg.FileID] = sg
		}
		name := filepath.Base(sg.Path)
		if sz, ok := have[name]; ok && sz == sg.Size {
			continue
		}
		if err := s3.upload(sg.Path, joinPath(url, name)); err != nil {
			return sent, err
		}
		sent = append(sent, name)
	}
	// The spool keeps only each database's newest segment once the bucket
	// has them all: the archivers need it to know where the archive ends
	// and to check the history did not fork (walarchive.Archive.Append);
	// the rest would only grow beside the database. Under the archive's
	// lock, so no archiver reads a segment as it goes.
	unlock, err := dirlock.Lock(o.FS, dir, 30*time.Second)
	if err != nil {
		return sent, nil // trimmed next time
	}
	defer unlock()
	for _, sg := range segs {
		if sg.Path != newest[sg.FileID].Path {
			if err := o.FS.Remove(sg.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
				o.Logger.Warn("trim the WAL spool", "segment", sg.Path, "err", err)
			}
		}
	}
	return sent, nil
}

// remoteArchiveOf returns the remote archive of a backup directory on
// object storage ("" for a local one).
func (o Options) remoteArchiveOf(dir string) string {
	if a := o.archiveDir(dir); IsRemote(a) {
		return strings.TrimSuffix(canonS3(a), "/")
	}
	return ""
}
