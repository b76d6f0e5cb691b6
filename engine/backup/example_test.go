package backup_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/backup"
)

// The operations guide's flow: full and incremental backups, listing,
// verification, restore, and point-in-time recovery from the WAL archive.
func Example() {
	tmp, _ := os.MkdirTemp("", "sombra-backup-example")
	defer os.RemoveAll(tmp)
	db, err := engine.Open(filepath.Join(tmp, "production.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	m := backup.NewBackupManager(db, filepath.Join(tmp, "backups"))
	if err := m.EnableWALArchiving(); err != nil {
		log.Fatal(err)
	}
	add := func(name string) {
		db.Update(func(tx *engine.Tx) error {
			_, err := tx.CreateNode("User", engine.Properties{"name": engine.StringValue(name)})
			return err
		})
	}
	add("alice")
	if _, err := m.CreateFullBackup(filepath.Join(tmp, "backups", "full_20240115_120000")); err != nil {
		log.Fatal(err)
	}
	add("bob")
	if _, err := m.CreateIncrementalBackup(filepath.Join(tmp, "backups", "inc_20240115_130000")); err != nil {
		log.Fatal(err)
	}
	beforeCarol := time.Now()
	add("carol")
	m.ArchiveWAL()

	list, _ := m.ListBackups()
	for _, b := range list {
		fmt.Printf("%s: %s, parent %q, chain %s\n", b.Name, b.Type, b.Parent, b.Chain)
	}
	if v, err := m.VerifyBackup("inc_20240115_130000"); err != nil || !v.OK {
		log.Fatal(err)
	}
	if _, err := m.RestoreFromBackup("full_20240115_120000", filepath.Join(tmp, "restored.db")); err != nil {
		log.Fatal(err)
	}
	r, err := m.RestoreToTime(beforeCarol, filepath.Join(tmp, "pitr.db"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("point in time: from", r.Backup, "plus", r.Replay.Transactions, "archived transactions")
	// Output:
	// full_20240115_120000: full, parent "", chain ok
	// inc_20240115_130000: incremental, parent "full_20240115_120000", chain ok
	// point in time: from inc_20240115_130000 plus 0 archived transactions
}
