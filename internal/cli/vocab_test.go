package cli

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"
)

type stampDoc struct {
	SchemaVersion int        `json:"schema_version"`
	CreatedAt     time.Time  `json:"created_at"`
	Nested        []any      `json:"nested"`
	Optional      *time.Time `json:"optional"`
}

// TestTimestampsWholeSecondsZ (issue 12 #13): documents carry timestamps
// as "2026-12-02T13:20:00Z", which the real jq's fromdateiso8601 reads; a
// document with a fractional or offset timestamp is refused.
func TestTimestampsWholeSecondsZ(t *testing.T) {
	at := time.Date(2026, 12, 2, 14, 20, 0, 123456789, time.FixedZone("CET", 3600))
	var buf bytes.Buffer
	doc := stampDoc{SchemaVersion: SchemaVersion, CreatedAt: Timestamp(at), Optional: TimestampPtr(&at), Nested: []any{"x"}}
	if err := writeJSON(&buf, doc); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"created_at": "2026-12-02T13:20:00Z"`) {
		t.Errorf("got %s", buf.String())
	}
	if jq, err := exec.LookPath("jq"); err == nil {
		cmd := exec.Command(jq, "-e", ".created_at | fromdateiso8601")
		cmd.Stdin = bytes.NewReader(buf.Bytes())
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "1796217600" {
			t.Errorf("jq fromdateiso8601: %v %s", err, out)
		}
	} else {
		t.Log("jq not installed; the fromdateiso8601 check was skipped")
	}
	for _, bad := range []stampDoc{
		{SchemaVersion: SchemaVersion, CreatedAt: at.UTC()},
		{SchemaVersion: SchemaVersion, CreatedAt: Timestamp(at), Optional: &at},
		{SchemaVersion: SchemaVersion, CreatedAt: Timestamp(at).In(time.FixedZone("CET", 3600))},
		{SchemaVersion: SchemaVersion, Nested: []any{map[string]any{"t": "2026-12-02T13:20:00.5Z"}}},
	} {
		if err := writeJSON(&bytes.Buffer{}, bad); err == nil {
			t.Errorf("%+v: accepted", bad)
		}
	}
}
