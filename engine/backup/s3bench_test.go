package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/internal/s3test"
)

// BenchmarkS3VsLocal measures full backup and restore throughput (MB/s of
// backup file) into a local directory and into a bucket of the local
// VersityGW server (loopback; its posix backend on the same disk):
//
//	go test ./engine/backup -run '^$' -bench S3VsLocal -benchtime 3x
//
// SOMBRA_S3_BENCH_MB sets the database size (default 64).
func BenchmarkS3VsLocal(b *testing.B) {
	mb := 64
	if v, err := strconv.Atoi(os.Getenv("SOMBRA_S3_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	srv := s3test.Start(b)
	srv.MakeBucket(b, "bench")
	tmp := b.TempDir()
	db := openDB(b, filepath.Join(tmp, "bench.db"), engine.Config{})
	defer db.Close()
	for i := 0; i < mb*4; i++ { // 2000 nodes of ~250 bytes: about 1/4 MB
		addBatch(b, db, i*2000, 2000)
	}
	if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		b.Fatal(err)
	}
	for _, where := range []string{"local", "s3"} {
		dir := filepath.Join(tmp, "backups")
		if where == "s3" {
			dir = "s3://bench/prod"
		}
		opts := Options{Force: true, NoLogicalHash: true, TempDir: tmp}
		m := NewBackupManagerWithOptions(db, dir, opts)
		var size int64
		b.Run("backup/"+where, func(b *testing.B) {
			for range b.N {
				r, err := m.CreateFullBackup("full")
				if err != nil {
					b.Fatal(err)
				}
				size = r.Bytes
			}
			b.SetBytes(size)
		})
		b.Run("restore/"+where, func(b *testing.B) {
			b.SetBytes(size)
			for i := range b.N {
				target := filepath.Join(tmp, fmt.Sprintf("restored-%s-%d.db", where, i))
				if _, err := Restore(dir, "full", target, opts); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				os.Remove(target)
				b.StartTimer()
			}
		})
	}
}
