package cli

import (
	"strings"
	"testing"
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
		p := NewProgress(s, &tt.g, 1<<20, "copying")
		p.Add64(1 << 19)
		p.Finish()
		if out.Len()+errOut.Len() != 0 {
			t.Errorf("%s: progress wrote %q / %q", tt.name, out.String(), errOut.String())
		}
	}
}

func TestProgressBar(t *testing.T) {
	s, _, out, errOut := Test()
	s.ErrIsTTY = true
	p := NewProgress(s, &Globals{}, 4<<20, "backup")
	p.Add64(1 << 20) // the first update draws at once; later ones are throttled
	p.Finish()
	if out.Len() != 0 {
		t.Errorf("progress on stdout: %q", out.String())
	}
	if got := errOut.String(); !strings.Contains(got, "backup") || !strings.Contains(got, "MB") {
		t.Errorf("stderr = %q, want a bar with description and bytes", got)
	}
}
