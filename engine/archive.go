package engine

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/sombradb/sombra/engine/internal/btree"
	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/wal"
	"github.com/sombradb/sombra/engine/internal/walarchive"
	"github.com/sombradb/sombra/engine/vfs"
)

// SetWALArchiveDir turns WAL archiving on (dir not empty) or off (dir
// empty). The absolute directory is stored in the database's catalog
// (key "wal_archive"), together with the database's absolute path, so every
// connection in every process archives the log into it before the log is
// reset (see installArchiveHook); the setting is read from the database file
// at each reset, so it takes effect without reopening. It commits a
// transaction.
//
// A copy of the file at another path (a restore drill, say) carries the
// setting along but does not archive into the original's directory: the
// path no longer matches, and WALArchiveDir reports archiving as off.
//
// Under access control it needs Configure for the connection's user
// (Config.User; Session.SetWALArchiveDir for another).
func (db *DB) SetWALArchiveDir(dir string) error { return db.setWALArchiveDir(db.cfg.User, dir) }

func (db *DB) setWALArchiveDir(user, dir string) error {
	val := []byte(nil)
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("WAL archive directory %q: %w", dir, err)
		}
		dbAbs, err := filepath.Abs(db.p.Path())
		if err != nil {
			return err
		}
		dir = abs
		if val, err = json.Marshal(archiveSetting{Dir: abs, DB: dbAbs}); err != nil {
			return err
		}
	}
	err := db.configureTx(user, "wal_archive:"+dir, func(tx *Tx) error {
		if dir == "" {
			return tx.del(page.RootCatalog, []byte(catArchive))
		}
		// Created once allowed to (inside the checked transaction).
		// Durably: a power cut must not lose the directory's entry, and
		// with it the segments archived into it (see TestPowerLossNewArchiveDirIsDurable).
		if err := vfs.MkdirAllDurable(db.cfg.FS, dir); err != nil {
			return fmt.Errorf("create WAL archive directory: %w", err)
		}
		return tx.put(page.RootCatalog, []byte(catArchive), val)
	})
	if err != nil {
		return fmt.Errorf("set WAL archive directory: %w", err)
	}
	db.log.Info("WAL archiving", "dir", dir)
	return db.installArchiveHook()
}

// archiveSetting is the catalog value of "wal_archive".
type archiveSetting struct {
	Dir string `json:"dir"`
	DB  string `json:"db"` // absolute path of the database that enabled it
}

// archiveDir decodes a setting and returns the directory if it applies to
// this database file ("" otherwise, with the reason).
func (db *DB) archiveDir(v []byte) (string, string) {
	var s archiveSetting
	if err := json.Unmarshal(v, &s); err != nil || s.Dir == "" {
		return "", "unreadable WAL archive setting"
	}
	if abs, err := filepath.Abs(db.p.Path()); err == nil && s.DB != "" && s.DB != abs {
		return "", "WAL archiving was enabled for " + s.DB + ", not this file (a copy or restore?): enable it again to archive this database"
	}
	return s.Dir, ""
}

// WALArchiveDir returns the WAL archive directory ("" when archiving is off
// for this database file).
func (db *DB) WALArchiveDir() (string, error) {
	v, err := view(db, func(tx *Tx) ([]byte, error) {
		v, ok, err := tx.get(page.RootCatalog, []byte(catArchive))
		if err != nil || !ok {
			return nil, err
		}
		return v, nil
	})
	if err != nil || v == nil {
		return "", err
	}
	dir, _ := db.archiveDir(v)
	return dir, nil
}

// fileReader reads pages straight from the database file, checksummed.
// It is only used while the whole log has been checkpointed (just before a
// WAL reset), when the file alone is the latest committed state.
type fileReader struct{ db *DB }

func (r fileReader) Page(id common.PageID) ([]byte, error) {
	b := make([]byte, r.db.p.PageSize())
	if err := r.db.p.RawDBPage(id, b); err != nil {
		return nil, fmt.Errorf("read %s page %d: %w", r.db.p.Path(), id, err)
	}
	b, err := r.db.p.OpenRaw(id, b, r.db.p.Path(), int64(id)*int64(len(b)))
	if err != nil {
		return nil, err
	}
	if err := page.Check(b, r.db.p.Path(), id); err != nil {
		return nil, err
	}
	return b, nil
}

// archiveDirFromFile reads the archive setting from the database file
// without taking any lock (the caller is resetting the log and holds them).
func (db *DB) archiveDirFromFile() (string, error) {
	r := fileReader{db}
	b, err := r.Page(0)
	if err != nil {
		return "", err
	}
	m, err := page.DecodeMeta(b)
	if err != nil {
		return "", err
	}
	v, ok, err := btree.Get(r, m.Roots[page.RootCatalog], []byte(catArchive))
	if err != nil || !ok {
		return "", err
	}
	dir, why := db.archiveDir(v)
	if why != "" {
		db.log.Warn("WAL not archived", "path", db.p.Path(), "reason", why)
	}
	return dir, nil
}

// installArchiveHook makes this connection archive the WAL's committed
// transactions before it resets the log, when the catalog names an archive
// directory. engine.open calls it for every writable connection; calling it
// again is harmless.
//
// Archiving failures do not fail the reset (the application keeps
// writing): they are logged at error level and leave a gap in the archive,
// which point-in-time restore reports by LSN and time.
func (db *DB) installArchiveHook() error {
	if db.cfg.ReadOnly {
		return nil
	}
	p := db.p
	p.SetBeforeRestart(func(ix *wal.Index, f vfs.File, pageSize int) error {
		dir, err := db.archiveDirFromFile()
		if err != nil {
			db.log.Error("WAL archiving: cannot read the archive setting; the archive will have a gap", "path", p.Path(), "err", err)
			return nil
		}
		if dir == "" {
			return nil
		}
		res, err := walarchive.New(db.cfg.FS, dir).SealedWith(p.Cipher()).ArchiveIndex(p.FileID(), ix, f, pageSize, p.WALPath())
		if err != nil {
			db.log.Error("WAL archiving failed; the archive will have a gap", "path", p.Path(), "dir", dir, "err", err)
			return nil
		}
		if res.Txs > 0 {
			db.log.Info("WAL archived", "dir", dir, "first_lsn", res.FirstLSN, "last_lsn", res.LastLSN, "transactions", res.Txs)
		}
		return nil
	})
	return nil
}
