//go:build !linux

package pager

import (
	"errors"

	"github.com/sombradb/sombra/engine/vfs"
)

// fallocateKeepSize is not available here; the log allocates as it grows.
func fallocateKeepSize(vfs.File, int64, int64) error { return errors.ErrUnsupported }
