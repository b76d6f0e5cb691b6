package backup

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/sombradb/sombra/engine/internal/procs"
	"github.com/sombradb/sombra/engine/vfs"
)

// Temporary files carry the pid of the process that made them (see
// tempNear and create), so the next run of the same operation can tell
// the leftovers of a killed run (pid gone) from those of one still running
// (pid alive, left alone).
var (
	// .TARGET.restore-PID-N.tmp (and -wal, -shm, -changes of a verify's
	// trial restore, which is opened as a database).
	staleNearRE = regexp.MustCompile(`^\.(.+)\.(restore|pitr|verify|upload)-(\d+)-\d+\.tmp(-wal|-shm|-changes)?$`)
	// NAME.backup.tmp-PID-N, catalog.json.tmp-PID-N
	staleBackupRE = regexp.MustCompile(`^(.+)\.tmp-(\d+)-\d+$`)
)

// removeStaleNear removes from dir the temporary files that operation
// what (restore, pitr, verify) left for base when killed: those whose
// process is gone. It returns the names removed.
func removeStaleNear(fs vfs.FS, dir, base, what string) []string {
	return removeStale(fs, dir, func(name string) (int, bool) {
		m := staleNearRE.FindStringSubmatch(name)
		if m == nil || m[1] != base || m[2] != what {
			return 0, false
		}
		pid, err := strconv.Atoi(m[3])
		return pid, err == nil
	})
}

// removeStaleBackupTemps removes from a backup directory the temporary
// backup and catalog files of killed backups (process gone).
func removeStaleBackupTemps(fs vfs.FS, dir string) []string {
	return removeStale(fs, dir, func(name string) (int, bool) {
		m := staleBackupRE.FindStringSubmatch(name)
		if m == nil || (filepath.Ext(m[1]) != Ext && m[1] != CatalogFile) {
			return 0, false
		}
		pid, err := strconv.Atoi(m[2])
		return pid, err == nil
	})
}

func removeStale(fs vfs.FS, dir string, match func(string) (int, bool)) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		pid, ok := match(e.Name())
		if !ok || e.IsDir() || pid == os.Getpid() || procs.Alive(pid) {
			continue
		}
		if fs.Remove(filepath.Join(dir, e.Name())) == nil {
			out = append(out, e.Name())
		}
	}
	return out
}
