package cli

import (
	"os"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/encryption"
)

// KeyEnv is the environment variable the tools read an encryption key
// from. With it set, every tool opens encrypted databases (plaintext ones
// open as before); without it, an encrypted database is refused with a
// one-line error saying the key is needed.
const KeyEnv = "SOMBRA_ENCRYPTION_KEY"

// useKeyFromEnv installs the key from KeyEnv, if set, as the engine's
// fallback for encrypted files.
func useKeyFromEnv() error {
	if os.Getenv(KeyEnv) == "" {
		return nil
	}
	c, err := encryption.NewEncryptionConfig().WithKeyFromEnv(KeyEnv)
	if err != nil {
		return Usagef("%v", err)
	}
	engine.SetFallbackEncryption(c)
	return nil
}
