package cli

import (
	"fmt"
	"strings"
	"time"
)

// The JSON vocabulary every tool's --json document shares (README, "JSON
// vocabulary"). A key means the same thing in every document, so one jq
// filter works across tools. Renaming a key is an incompatible change and
// bumps SchemaVersion.
const (
	// KeyDB is the database file the command acts on, as given by --db
	// (it was "path", "input", "target" or "source" in schema 1).
	KeyDB = "db"
	// KeyPath is the backup file in sombra-backup's documents.
	KeyPath = "path"
	// KeyNodeCount and KeyEdgeCount count nodes and edges (were "nodes",
	// "edges" in verify documents).
	KeyNodeCount = "node_count"
	KeyEdgeCount = "edge_count"
	// KeyFileSize is a file's size in bytes (was "size" or "bytes"). Every
	// size in a document is in bytes; its key ends in "size" or "bytes".
	KeyFileSize = "file_size"
	// Timestamps end in "_at" ("created_at", "checked_at", "verified_at",
	// "last_checkpoint_at"), hold RFC 3339 UTC at whole seconds
	// ("2026-12-02T13:20:00Z", which jq's fromdateiso8601 reads) and are
	// null when unknown. Durations are "duration_ms" in milliseconds.
	SuffixTime = "_at"
)

// Timestamp is t as every --json document carries it: UTC, whole seconds
// (truncated). encoding/json then writes "2026-12-02T13:20:00Z".
func Timestamp(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

// TimestampPtr is Timestamp for an optional time (nil stays nil).
func TimestampPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := Timestamp(*t)
	return &u
}

// checkTimestamps refuses a document holding a timestamp with a fraction
// of a second or an offset other than Z: jq's fromdateiso8601 fails on
// both, so such a document must never ship (a result field that skipped
// Timestamp is a programming error, caught by every golden test).
func checkTimestamps(v any) error {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if err := checkTimestamps(e); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
	case []any:
		for _, e := range x {
			if err := checkTimestamps(e); err != nil {
				return err
			}
		}
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		if err == nil && (!strings.HasSuffix(x, "Z") || t.Nanosecond() != 0 || strings.Contains(x, ".")) {
			return fmt.Errorf("timestamp %q is not whole seconds in UTC (use cli.Timestamp)", x)
		}
	}
	return nil
}
