package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrNotConfirmed is returned by a command the operator declined at its
// confirmation prompt.
var ErrNotConfirmed = errors.New("not confirmed")

// Interactive reports whether a question can be asked: stdin and stderr
// are terminals. In a pipe, under cron or in CI there is nobody to answer,
// so commands never prompt there (DESIGN.md: "no prompts").
func (s IOStreams) Interactive() bool { return s.InIsTTY && s.ErrIsTTY }

// Confirm asks question on s.ErrOut with a "[y/N]" suffix and reads one
// line from s.In: only "y" or "yes" (any case) confirms; anything else,
// an empty line or end of input declines.
func Confirm(s IOStreams, question string) (bool, error) {
	if _, err := fmt.Fprintf(s.ErrOut, "%s [y/N] ", question); err != nil {
		return false, err
	}
	line, err := bufio.NewReader(s.In).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("reading the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}
