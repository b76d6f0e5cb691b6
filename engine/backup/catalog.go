package backup

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sombradb/sombra/engine/internal/dirlock"
	"github.com/sombradb/sombra/engine/vfs"
)

// CatalogFile is the name of the catalog in a backup directory.
const CatalogFile = "catalog.json"

// Verification is the outcome of the last VerifyBackup of a backup.
type Verification struct {
	Time  time.Time `json:"time"`
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
}

// BackupInfo describes one backup file.
type BackupInfo struct {
	Name        string        `json:"name"`
	Path        string        `json:"path"`
	Type        string        `json:"type"` // full, incremental; "unknown" if unreadable
	Size        int64         `json:"size"`
	Parent      string        `json:"parent,omitempty"`
	BaseLSN     uint64        `json:"base_lsn"`
	EndLSN      uint64        `json:"end_lsn"`
	PageCount   uint64        `json:"page_count"`
	Pages       uint64        `json:"pages"` // page records in the file
	Created     time.Time     `json:"created"`
	EndTime     *time.Time    `json:"end_time,omitempty"` // commit time of EndLSN, when known
	DBFileID    string        `json:"db_file_id"`
	LogicalHash string        `json:"logical_hash,omitempty"`
	Chain       string        `json:"chain"` // "ok" or "broken: why"
	Verified    *Verification `json:"verified,omitempty"`
	Error       string        `json:"error,omitempty"` // the file could not be read
}

// ChainOK reports whether the backup can be restored (its chain is whole).
func (b *BackupInfo) ChainOK() bool { return b.Error == "" && b.Chain == "ok" }

// PointInTime is the time the backup's content corresponds to: the commit
// time of its end LSN when known, else its creation time.
func (b *BackupInfo) PointInTime() time.Time {
	if b.EndTime != nil {
		return *b.EndTime
	}
	return b.Created
}

type catalog struct {
	SchemaVersion int          `json:"schema_version"`
	Updated       time.Time    `json:"updated"`
	Backups       []BackupInfo `json:"backups"`
}

// ListBackups lists the backups in dir, rebuilt from the *.backup files
// present (headers and trailers only), sorted by end LSN then creation
// time, with the last verification of each taken from catalog.json. It
// only reads. Files that fail validation are listed with Error set;
// temporary files of running or killed backups are never listed.
func ListBackups(dir string) ([]BackupInfo, error) { return listBackups(vfs.OS, dir) }

// ListBackupsWithOptions is ListBackups through opts' file layer: dir may
// be on object storage (s3://bucket/prefix, reached as opts.S3 says), where
// only completely uploaded backups are listed.
func ListBackupsWithOptions(dir string, opts Options) ([]BackupInfo, error) {
	o := opts.withDefaults()
	return listBackups(o.FS, dir)
}

func listBackups(fs vfs.FS, dir string) ([]BackupInfo, error) {
	ents, err := fs.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("backup directory %s: %w", dir, os.ErrNotExist)
		}
		return nil, fmt.Errorf("read backup directory %s: %w", dir, err)
	}
	var out []BackupInfo
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, Ext) || strings.HasPrefix(n, ".") {
			continue
		}
		out = append(out, describe(fs, dir, strings.TrimSuffix(n, Ext)))
	}
	chainStatus(out)
	old, _ := readCatalog(fs, dir)
	for i := range out {
		for _, o := range old.Backups {
			if o.Name == out[i].Name && o.EndLSN == out[i].EndLSN && o.Created.Equal(out[i].Created) && o.Type == out[i].Type {
				out[i].Verified = o.Verified
			}
		}
	}
	slices.SortFunc(out, func(a, b BackupInfo) int {
		switch {
		case a.EndLSN != b.EndLSN:
			return cmp.Compare(a.EndLSN, b.EndLSN)
		case !a.Created.Equal(b.Created):
			return a.Created.Compare(b.Created)
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

func describe(fs vfs.FS, dir, name string) BackupInfo {
	path := backupPath(dir, name)
	bi := BackupInfo{Name: name, Path: path, Type: "unknown", Chain: "broken: unreadable"}
	b, err := openFile(fs, path)
	if err != nil {
		bi.Error = err.Error()
		if st, err := fs.Stat(path); err == nil {
			bi.Size = st.Size()
		}
		return bi
	}
	defer b.Close()
	h := b.hdr
	bi = BackupInfo{Name: name, Path: path, Type: h.Type.String(), Size: b.size, Parent: h.Parent,
		BaseLSN: h.BaseLSN, EndLSN: h.EndLSN, PageCount: h.PageCount, Pages: b.records, Created: h.Created,
		DBFileID: fmt.Sprintf("%016x", h.FileID), LogicalHash: h.LogicalHash}
	if !h.EndTime.IsZero() {
		t := h.EndTime
		bi.EndTime = &t
	}
	return bi
}

// chainStatus fills Chain: a full backup is ok; an incremental is ok when
// its parent is present, ok, of the same database, and ends where it
// begins.
func chainStatus(list []BackupInfo) {
	byName := map[string]*BackupInfo{}
	for i := range list {
		byName[list[i].Name] = &list[i]
	}
	var status func(b *BackupInfo, depth int) string
	status = func(b *BackupInfo, depth int) string {
		if b.Error != "" {
			return "broken: unreadable"
		}
		if b.Type == TypeFull.String() {
			return "ok"
		}
		if depth > len(list) {
			return "broken: parent cycle"
		}
		p := byName[b.Parent]
		switch {
		case p == nil:
			return fmt.Sprintf("broken: parent %s is missing", b.Parent)
		case p.Error != "":
			return fmt.Sprintf("broken: parent %s is unreadable", b.Parent)
		case p.DBFileID != b.DBFileID:
			return fmt.Sprintf("broken: parent %s is of another database file", b.Parent)
		case p.EndLSN != b.BaseLSN:
			return fmt.Sprintf("broken: parent %s ends at LSN %d, this begins after LSN %d", b.Parent, p.EndLSN, b.BaseLSN)
		}
		if s := status(p, depth+1); s != "ok" {
			return fmt.Sprintf("broken: ancestor %s: %s", b.Parent, strings.TrimPrefix(s, "broken: "))
		}
		return "ok"
	}
	for i := range list {
		list[i].Chain = status(&list[i], 0)
	}
}

func readCatalog(fs vfs.FS, dir string) (catalog, error) {
	var c catalog
	b, err := vfs.ReadFile(fs, joinPath(dir, CatalogFile), 64<<20)
	if err != nil {
		return c, err
	}
	err = json.Unmarshal(b, &c)
	return c, err
}

// catalogLockWait bounds the wait for another command's catalog update.
const catalogLockWait = 30 * time.Second

// updateCatalog rebuilds catalog.json from the files under the directory
// lock, lets edit change the list (e.g. record a verification), and writes
// it atomically (temporary file, fsync, rename, fsync directory).
func updateCatalog(o Options, dir string, edit func([]BackupInfo)) error {
	// The catalog lock is held for milliseconds by other backup commands,
	// never by a database connection: waiting for it is not what --wait
	// (Options.BusyTimeout, for database locks) is about.
	st, err := o.store(dir)
	if err != nil {
		return err
	}
	if !st.Remote() {
		// Object storage has no lock; there the catalog is only a cache of
		// verifications (the list is rebuilt from the objects), and the
		// last writer wins.
		unlock, err := dirlock.Lock(o.FS, dir, max(o.BusyTimeout, catalogLockWait))
		if err != nil {
			return err
		}
		defer unlock()
	}
	list, err := listBackups(o.FS, dir)
	if err != nil {
		return err
	}
	if edit != nil {
		edit(list)
	}
	c := catalog{SchemaVersion: 1, Updated: o.Now().UTC(), Backups: list}
	if c.Backups == nil {
		c.Backups = []BackupInfo{}
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	return st.PutFile(joinPath(dir, CatalogFile), b)
}
