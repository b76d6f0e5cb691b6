package cli

import (
	"strings"
	"testing"

	"github.com/sombradb/sombra/engine"
)

func TestKeyFromEnv(t *testing.T) {
	defer engine.SetFallbackEncryption(nil)
	t.Setenv(KeyEnv, "")
	if err := useKeyFromEnv(); err != nil || engine.FallbackEncryption() != nil {
		t.Fatalf("unset: %v", err)
	}
	t.Setenv(KeyEnv, "not-a-key")
	if err := useKeyFromEnv(); ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), KeyEnv) {
		t.Fatalf("bad key: %v", err)
	}
	t.Setenv(KeyEnv, strings.Repeat("ab", 32))
	if err := useKeyFromEnv(); err != nil || engine.FallbackEncryption() == nil {
		t.Fatalf("good key: %v", err)
	}
}
