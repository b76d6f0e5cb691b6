package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// FormatBytes renders n for a person in binary units: "512 B", "1.5 KiB",
// "3.25 GiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for (v >= unit || v <= -unit) && i < 5 {
		v /= unit
		i++
	}
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
	return s + " " + string("KMGTPE"[i]) + "iB"
}

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

// FormatAge renders how long ago something happened in the largest sensible
// units: "45s", "12m", "3h5m", "2d4h".
func FormatAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		h := int(d.Hours())
		if m := int(d.Minutes()) % 60; m != 0 {
			return fmt.Sprintf("%dh%dm", h, m)
		}
		return fmt.Sprintf("%dh", h)
	default:
		days := int(d.Hours()) / 24
		if h := int(d.Hours()) % 24; h != 0 {
			return fmt.Sprintf("%dd%dh", days, h)
		}
		return fmt.Sprintf("%dd", days)
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
// or with a unit: 1048576, 512KiB, 100MiB, 1GiB, 2GB (units are binary:
// K, KB and KiB all mean 1024).
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
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, suffix := t[:i], strings.ToUpper(strings.TrimSpace(t[i:]))
	shift := 0
	switch strings.TrimSuffix(strings.TrimSuffix(suffix, "B"), "I") {
	case "":
		if suffix != "" && suffix != "B" {
			return 0, fmt.Errorf("%q is not a size (use e.g. 1048576, 512KiB, 100MiB, 1GiB)", s)
		}
	case "K":
		shift = 10
	case "M":
		shift = 20
	case "G":
		shift = 30
	case "T":
		shift = 40
	default:
		return 0, fmt.Errorf("%q is not a size (use e.g. 1048576, 512KiB, 100MiB, 1GiB)", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size (use e.g. 1048576, 512KiB, 100MiB, 1GiB)", s)
	}
	return int64(v * float64(int64(1)<<shift)), nil
}
