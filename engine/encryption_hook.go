package engine

import (
	"sync"

	"github.com/sombradb/sombra/engine/internal/pager"
)

// PageCipher seals database pages for data-at-rest encryption; set it in
// Config.Encryption (package engine/encryption implements it with
// AES-256-GCM). Page 0 stays plaintext: it records that the file is
// encrypted and a key check. Every other page is stored as
// Seal(pageID, first pageSize-Overhead() bytes of the page), exactly
// pageSize bytes on disk.
//
// Seal must return len(plain)+Overhead() bytes and never reuse a nonce
// for different contents under one key; Open must fail when the image was
// altered or was sealed with another key or page id. Overhead must be
// 28 (a 12-byte nonce and a 16-byte tag), which the key check relies on.
type PageCipher interface {
	Overhead() int
	Seal(pageID uint64, plain []byte) []byte
	Open(pageID uint64, sealed []byte) ([]byte, error)
}

var fallback struct {
	sync.Mutex
	c PageCipher
}

// SetFallbackEncryption installs, process-wide, the key used to open files
// that turn out to be encrypted when Config.Encryption is nil. It is how the
// operator tools honour SOMBRA_ENCRYPTION_KEY without a flag on every
// command. It is never used to create a file or to open a plaintext one.
// nil removes it.
func SetFallbackEncryption(c PageCipher) {
	fallback.Lock()
	fallback.c = c
	fallback.Unlock()
}

// FallbackEncryption returns the key installed by SetFallbackEncryption.
func FallbackEncryption() PageCipher {
	fallback.Lock()
	defer fallback.Unlock()
	return fallback.c
}

func fallbackCipher() pager.Cipher {
	c, err := pagerCipher(FallbackEncryption())
	if err != nil {
		return nil
	}
	return c
}
