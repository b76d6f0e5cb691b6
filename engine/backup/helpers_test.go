package backup

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
)

func TestMain(m *testing.M) {
	if os.Getenv("SOMBRA_BACKUP_TEST_CHILD") == "writer" {
		os.Exit(runWriterChild(os.Getenv("SOMBRA_BACKUP_TEST_DB")))
	}
	if os.Getenv("SOMBRA_BACKUP_TEST_CHILD") == "s3upload" {
		os.Exit(runS3UploadChild(os.Getenv("SOMBRA_BACKUP_TEST_DB"), os.Getenv("SOMBRA_BACKUP_TEST_TMP")))
	}
	os.Exit(m.Run())
}

// runWriterChild commits one node per transaction until stdin closes,
// printing "ack SEQ LSN" after each durable commit.
func runWriterChild(path string) int {
	db, err := engine.OpenWithConfig(path, engine.Config{WALAutoCheckpoint: 25, BusyTimeout: time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	w := bufio.NewWriter(os.Stdout)
	for i := int64(1); ; i++ {
		select {
		case <-stop:
			if err := db.Close(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			return 0
		default:
		}
		err := db.Update(func(tx *engine.Tx) error {
			_, err := tx.CreateNode("W", engine.Properties{"seq": engine.IntValue(i), "pad": engine.StringValue("0123456789abcdef0123456789abcdef")})
			return err
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if i%40 == 0 {
			// Checkpoint and reset the WAL now and then (auto-checkpoints
			// alone never reset it), so that incremental backups must find
			// checkpointed changes in the change log.
			db.CheckpointWithMode(engine.CheckpointRestart)
		}
		var lsn uint64
		db.View(func(tx *engine.Tx) error { lsn = tx.LSN(); return nil }) // sole writer: this commit's LSN
		fmt.Fprintf(w, "ack %d %d\n", i, lsn)
		w.Flush()
	}
}

func openDB(t testing.TB, path string, cfg engine.Config) *engine.DB {
	t.Helper()
	db, err := engine.OpenWithConfig(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// addNodes commits n transactions, each creating one node with seq
// from..from+n-1, and links every node to its predecessor.
func addNodes(t testing.TB, db *engine.DB, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		err := db.Update(func(tx *engine.Tx) error {
			id, err := tx.CreateNode("N", engine.Properties{"seq": engine.IntValue(int64(i)), "text": engine.StringValue(fmt.Sprintf("node number %d with some padding text", i))})
			if err != nil {
				return err
			}
			if id > 1 {
				_, err = tx.CreateEdge(id, id-1, "PREV", nil)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// addBatch creates n nodes in one transaction.
func addBatch(t testing.TB, db *engine.DB, from, n int) {
	t.Helper()
	err := db.Update(func(tx *engine.Tx) error {
		for i := from; i < from+n; i++ {
			if _, err := tx.CreateNode("B", engine.Properties{"seq": engine.IntValue(int64(i)), "blob": engine.StringValue(fmt.Sprintf("%0200d", i))}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// seqs returns the sorted seq properties of every node of a database file.
func seqs(t testing.TB, path string) []int64 {
	t.Helper()
	db := openDB(t, path, engine.Config{ReadOnly: true})
	defer db.Close()
	var out []int64
	err := db.View(func(tx *engine.Tx) error {
		for n, err := range tx.Nodes() {
			if err != nil {
				return err
			}
			if v, ok := n.Properties["seq"]; ok {
				i, _ := v.Int()
				out = append(out, i)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func hashOf(t testing.TB, path string) string {
	t.Helper()
	db := openDB(t, path, engine.Config{ReadOnly: true})
	defer db.Close()
	h, err := db.LogicalHash()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func span(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func listNames(t testing.TB, dir string) []string {
	t.Helper()
	l, err := ListBackups(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range l {
		out = append(out, b.Name)
	}
	return out
}

func dirFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
