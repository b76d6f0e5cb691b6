package cli

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/sombradb/sombra/internal/units"
)

// FormatBytes renders n for a person in binary units: "512 B", "1.5 KiB",
// "3.25 GiB" (the wording of the engine's health messages too).
func FormatBytes(n int64) string { return units.Bytes(n) }

// FormatBytesExact is FormatBytes followed by the exact count, e.g.
// "1.5 KiB (1536 bytes)"; counts below 1 KiB are printed once.
func FormatBytesExact(n int64) string {
	if n < 1024 && n > -1024 {
		return FormatBytes(n)
	}
	return fmt.Sprintf("%s (%d bytes)", FormatBytes(n), n)
}

// FormatPercent renders a percentage with two decimals: "12.50%".
func FormatPercent(p float64) string { return strconv.FormatFloat(p, 'f', 2, 64) + "%" }

// FormatDuration renders d rounded for a person: "850µs", "12ms",
// "1.234s", "3m20s".
func FormatDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	case d < time.Minute:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// YesNo renders a bool for a person.
func YesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Choice returns a string flag value restricted to choices, storing into p
// (which keeps its current value as the default). A bad value fails flag
// parsing, so it is a usage error (exit 2) naming the allowed values.
func Choice(p *string, choices ...string) pflag.Value {
	return &choiceValue{p: p, choices: choices}
}

// ByteSize is a flag value holding a byte count written as a plain number
// or with a unit that means what it says: KB, MB, GB, TB are powers of
// 1000 (1GB = 1000000000), KiB, MiB, GiB, TiB powers of 1024; a bare K, M,
// G, T is binary, as in dd.
type ByteSize int64

func (b *ByteSize) String() string { return strconv.FormatInt(int64(*b), 10) }
func (b *ByteSize) Type() string   { return "bytes" }

func (b *ByteSize) Set(s string) error {
	n, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = ByteSize(n)
	return nil
}

// ParseByteSize parses a ByteSize flag value.
func ParseByteSize(s string) (int64, error) {
	bad := fmt.Errorf("%q is not a size (use e.g. 1048576, 512KiB, 100MiB, 1GiB, 2GB)", s)
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, suffix := t[:i], strings.ToUpper(strings.TrimSpace(t[i:]))
	pow, base := 0, 1024.0
	if strings.HasSuffix(suffix, "B") && len(suffix) == 2 { // KB, MB, GB, TB: decimal
		base = 1000
	}
	switch strings.TrimSuffix(strings.TrimSuffix(suffix, "B"), "I") {
	case "":
		if suffix != "" && suffix != "B" {
			return 0, bad
		}
	case "K":
		pow = 1
	case "M":
		pow = 2
	case "G":
		pow = 3
	case "T":
		pow = 4
	default:
		return 0, bad
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, bad
	}
	return int64(v * math.Pow(base, float64(pow))), nil
}

// Duration is a duration flag value as operators write it: Go durations
// (90s, 1h30m) plus days and weeks (2d, 1w, 1d12h). Negative values are
// refused.
type Duration time.Duration

func (d *Duration) String() string { return formatFlagDuration(time.Duration(*d)) }
func (d *Duration) Type() string   { return "duration" }

func (d *Duration) Set(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return errNotDuration // pflag's message already quotes s
	}
	*d = Duration(v)
	return nil
}

// DurationVar defines a Duration flag on fs that writes to p.
func DurationVar(fs *pflag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	fs.Var((*Duration)(p), name, usage)
}

// formatFlagDuration prints whole days as "2d" and anything else as Go does.
func formatFlagDuration(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// errNotDuration is a bad duration flag value's error; pflag prefixes it
// with `invalid argument "x" for "--flag" flag:`.
var errNotDuration = errors.New("not a duration (use e.g. 90s, 30m, 36h, 2d, 1w)")

// ParseDuration parses a Duration flag value: leading "Nw" and "Nd" terms,
// then an optional Go duration (1d12h, 2w, 36h, 90s).
func ParseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("%q is not a duration (use e.g. 90s, 30m, 36h, 2d, 1w)", s)
	t := strings.TrimSpace(s)
	var total time.Duration
	for _, unit := range []struct {
		suffix byte
		d      time.Duration
	}{{'w', 7 * 24 * time.Hour}, {'d', 24 * time.Hour}} {
		i := 0
		for i < len(t) && t[i] >= '0' && t[i] <= '9' {
			i++
		}
		if i > 0 && i < len(t) && t[i] == unit.suffix {
			n, err := strconv.ParseInt(t[:i], 10, 64)
			if err != nil {
				return 0, bad
			}
			total += time.Duration(n) * unit.d
			t = t[i+1:]
		}
	}
	if t != "" {
		d, err := time.ParseDuration(t)
		if err != nil {
			return 0, bad
		}
		total += d
	}
	if total < 0 || strings.TrimSpace(s) == "" {
		return 0, bad
	}
	return total, nil
}
