//go:build !linux

package bench

import (
	"errors"
	"os"
)

func fdatasync(f *os.File) error { return f.Sync() }

// PeakRSSKiB is only implemented on Linux.
func PeakRSSKiB() (int64, error) { return 0, errors.New("peak RSS: not supported on this OS") }

// FSType is only implemented on Linux.
func FSType(string) string { return "" }

func diskUsage(info os.FileInfo) int64 { return info.Size() }

// ResetPeakRSS is only implemented on Linux.
func ResetPeakRSS() {}
