package backup

import (
	"path/filepath"
	"strings"

	bk "github.com/sombradb/sombra/engine/backup"
	"github.com/sombradb/sombra/internal/cli"
)

// Backup directories on object storage are named s3://bucket/prefix; the
// helpers below keep that spelling intact where filepath would fold the
// double slash.

// remoteRef splits s3://bucket/prefix/NAME[.backup] into the directory
// (s3://bucket/prefix) and the backup name.
func remoteRef(ref, what string) (dir, name string, err error) {
	rest, ok := strings.CutPrefix(ref, "s3://")
	if !ok {
		return "", "", cli.Usagef("%s %s: object storage is named s3://bucket/prefix/NAME", what, ref)
	}
	i := strings.LastIndex(rest, "/")
	if i <= 0 || strings.HasSuffix(rest, "/") {
		return "", "", cli.Usagef("%s %s: give a backup name after the bucket, e.g. s3://bucket/prefix/full_YYYYMMDD_HHMMSS", what, ref)
	}
	name = strings.TrimSuffix(rest[i+1:], bk.Ext)
	if name == "" || strings.HasPrefix(name, ".") {
		return "", "", cli.Usagef("%s %s: the backup name must not be empty or start with a dot", what, ref)
	}
	return "s3://" + rest[:i], name, nil
}

// joinRef joins a backup directory (local or s3://) and a file name.
func joinRef(dir, file string) string {
	if bk.IsRemote(dir) {
		return strings.TrimSuffix(dir, "/") + "/" + file
	}
	return filepath.Join(dir, file)
}

// refDir is filepath.Dir for local and s3:// references alike.
func refDir(ref string) string {
	if bk.IsRemote(ref) {
		if i := strings.LastIndex(ref, "/"); i > len("s3://") {
			return ref[:i]
		}
		return ref
	}
	return filepath.Clean(filepath.Dir(ref))
}
