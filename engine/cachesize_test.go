package engine

import (
	"errors"
	"testing"
)

func TestParseCacheSize(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "32M": 32 << 20, "1g": 1 << 30, "64K": 64 << 10} {
		if got, err := ParseCacheSize(in); err != nil || got != want {
			t.Errorf("ParseCacheSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "0", "-1M", "12X", "9999999999999G"} {
		if _, err := ParseCacheSize(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseCacheSize(%q): %v, want ErrInvalid", in, err)
		}
	}
}
