package cli

import (
	"strings"
	"testing"
	"time"
)

func TestProgressOnlyOnTTY(t *testing.T) {
	for _, tt := range []struct {
		name     string
		errIsTTY bool
		g        Globals
	}{
		{"pipe", false, Globals{}},
		{"quiet", true, Globals{Quiet: true}},
		{"json", true, Globals{JSON: true}},
	} {
		s, _, out, errOut := Test()
		s.ErrIsTTY = tt.errIsTTY
		update, finish := ProgressFunc(s, &tt.g, "copying")
		if update != nil {
			update(1<<19, 1<<20)
		}
		finish()
		if out.Len()+errOut.Len() != 0 {
			t.Errorf("%s: progress wrote %q / %q", tt.name, out.String(), errOut.String())
		}
	}
}

func TestProgressBar(t *testing.T) {
	s, _, out, errOut := Test()
	s.ErrIsTTY = true
	clock := time.Unix(1000, 0)
	b := newBar(s, "backup", func() time.Time { return clock })
	b.update(1<<20, 4<<20)
	if errOut.Len() != 0 {
		t.Fatalf("drawn before the first reading is due: %q", errOut.String())
	}
	clock = clock.Add(FirstReading)
	b.update(2<<20, 4<<20)
	b.finish()
	if out.Len() != 0 {
		t.Errorf("progress on stdout: %q", out.String())
	}
	// IEC units, as every size the tools print; the total is the one given.
	if got := errOut.String(); !strings.Contains(got, "backup") || !strings.Contains(got, "MiB") || !strings.Contains(got, "/4.0 MiB") {
		t.Errorf("stderr = %q, want a bar with description and bytes out of 4.0 MiB", got)
	}
}

// TestProgressFirstReading: the rate shown first is over the time since
// the bar started, never over the few microseconds before the first update
// (which read "2.0 TB/s" when a cached chunk came in at once).
func TestProgressFirstReading(t *testing.T) {
	s, _, _, errOut := Test()
	s.ErrIsTTY = true
	update, finish := ProgressFunc(s, &Globals{}, "verify")
	update(50<<20, 100<<20) // at once, from the cache
	time.Sleep(FirstReading + 20*time.Millisecond)
	update(51<<20, 100<<20) // 51 MiB in ~0.22 s: ~230 MiB/s, not TB/s
	finish()
	got := errOut.String()
	if !strings.Contains(got, "MiB/s") {
		t.Fatalf("stderr = %q, want a rate in MiB/s", got)
	}
	for _, absurd := range []string{"GiB/s", "TiB/s", "TB/s", "GB/s"} {
		if strings.Contains(got, absurd) {
			t.Errorf("first reading %q shows a rate in %s", got, absurd)
		}
	}
}

func TestProgressFuncOffTTY(t *testing.T) {
	s, _, _, _ := Test()
	update, finish := ProgressFunc(s, &Globals{}, "verify")
	if update != nil {
		t.Error("a callback off a terminal: the engine would call it for nothing")
	}
	finish()
}
