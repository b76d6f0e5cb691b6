//go:build !linux

package vfs

import "os"

// datasync is a full fsync where fdatasync is missing (macOS: os.File.Sync
// uses F_FULLFSYNC, which the durability of a commit needs there).
func datasync(f *os.File) error { return f.Sync() }
