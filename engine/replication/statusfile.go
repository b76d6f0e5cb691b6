package replication

// statusfile.go: a node writes its Status next to the database file
// (NAME.db-replication, JSON) every second, so that the operator tools,
// which open the file and not the process, can show a replica's role and
// lag (sombra-info) and judge it (sombra-health-check).

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// StatusFileSuffix is appended to the database path to name the file.
const StatusFileSuffix = "-replication"

// StatusFileInterval is how often a running node rewrites the file; a
// file much older than this was left by a process that is gone.
const StatusFileInterval = time.Second

// FileStatus is the status file's content.
type FileStatus struct {
	Status
	UpdatedAt time.Time `json:"updated_at"`
	PID       int       `json:"pid"`
}

// Stale reports whether the writer stopped rewriting the file (it was
// killed: a clean close removes it).
func (f FileStatus) Stale(now time.Time) bool {
	return now.Sub(f.UpdatedAt) > 5*StatusFileInterval
}

// ReadStatusFile reads the status file of the database at dbPath; it
// returns nil and no error when there is none (not replicated, or the
// node closed cleanly).
func ReadStatusFile(dbPath string) (*FileStatus, error) {
	b, err := os.ReadFile(dbPath + StatusFileSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replication status: %w", err)
	}
	var st FileStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("replication status %s: %w", dbPath+StatusFileSuffix, err)
	}
	return &st, nil
}

// writeStatusFile replaces the file atomically (temporary name, rename)
// through the database's file system, so a reader never sees half a
// document. It is not fsynced: after a power cut the file is stale or
// missing, and the next second rewrites it.
func (n *Node) writeStatusFile() error {
	b, err := json.Marshal(FileStatus{Status: n.Status(), UpdatedAt: time.Now().UTC(), PID: os.Getpid()})
	if err != nil {
		return err
	}
	path := n.path + StatusFileSuffix
	tmp := path + ".tmp"
	f, err := n.fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		f.Close()
		n.fs.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		n.fs.Remove(tmp)
		return err
	}
	return n.fs.Rename(tmp, path)
}

// statusFileLoop rewrites the file until the node closes, then removes
// it: a node that is not running has no replication state to report.
func (n *Node) statusFileLoop() {
	t := time.NewTicker(StatusFileInterval)
	defer t.Stop()
	for {
		if err := n.writeStatusFile(); err != nil {
			n.log.Warn("write the replication status file", "err", err)
		}
		select {
		case <-n.ctx.Done():
			_ = n.fs.Remove(n.path + StatusFileSuffix)
			return
		case <-t.C:
		}
	}
}
