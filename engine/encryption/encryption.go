// Package encryption implements data-at-rest encryption for Sombra
// databases: an engine.PageCipher sealing each page with AES-256-GCM.
//
//	enc, err := encryption.NewEncryptionConfig().WithKeyFromEnv("SOMBRA_ENCRYPTION_KEY")
//	if err == nil {
//		enc, err = enc.WithAlgorithm("AES-256-GCM")
//	}
//	db, err := engine.OpenWithConfig("encrypted.db", engine.Config{Encryption: enc})
//
// The key is 32 bytes, given as 64 hex characters or as base64. Each page
// (but page 0, which stays plaintext and holds a key check) is stored as a
// random 12-byte nonce, the GCM ciphertext of its first pageSize-28 bytes
// and the 16-byte tag; the page number is authenticated as additional data,
// so a page image moved to another page number fails to open.
package encryption

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sombradb/sombra/engine"
)

// AlgorithmAES256GCM is the only supported algorithm.
const AlgorithmAES256GCM = "AES-256-GCM"

// KeySize is the key length in bytes.
const KeySize = 32

const (
	nonceSize = 12
	tagSize   = 16
	// Overhead is the number of bytes a sealed page needs beyond its
	// plaintext: the nonce and the tag.
	Overhead = nonceSize + tagSize
)

// ErrNoKey is returned by Seal/Open use of a config without a key.
var ErrNoKey = errors.New("encryption: no key configured")

// EncryptionConfig holds the key and algorithm; it implements
// engine.PageCipher once a key is set.
type EncryptionConfig struct {
	algorithm string
	aead      cipher.AEAD
}

var _ engine.PageCipher = (*EncryptionConfig)(nil)

// NewEncryptionConfig returns a config for AES-256-GCM without a key.
func NewEncryptionConfig() *EncryptionConfig {
	return &EncryptionConfig{algorithm: AlgorithmAES256GCM}
}

// WithKeyFromEnv reads the key from environment variable name: 64 hex
// characters or the base64 encoding (standard or URL, padded or not) of
// 32 bytes.
func (c *EncryptionConfig) WithKeyFromEnv(name string) (*EncryptionConfig, error) {
	v, ok := os.LookupEnv(name)
	if !ok || strings.TrimSpace(v) == "" {
		return nil, fmt.Errorf("encryption key: environment variable %s is not set or empty: %w", name, engine.ErrInvalid)
	}
	key, err := ParseKey(v)
	if err != nil {
		return nil, fmt.Errorf("encryption key from %s: %w", name, err)
	}
	return c.WithKey(key)
}

// ParseKey decodes a key given as 64 hex characters or as base64 of 32
// bytes.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*KeySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("base64 key decodes to %d bytes, want %d: %w", len(k), KeySize, engine.ErrInvalid)
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("key is neither 64 hex characters nor base64 of %d bytes (got %d characters): %w", KeySize, len(s), engine.ErrInvalid)
}

// WithKey sets the 32-byte key.
func (c *EncryptionConfig) WithKey(key []byte) (*EncryptionConfig, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("encryption key is %d bytes, AES-256 needs %d: %w", len(key), KeySize, engine.ErrInvalid)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %v: %w", err, engine.ErrInvalid)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %v: %w", err, engine.ErrInvalid)
	}
	n := *c
	n.aead = aead
	return &n, nil
}

// WithAlgorithm selects the algorithm; only "AES-256-GCM" is supported.
func (c *EncryptionConfig) WithAlgorithm(name string) (*EncryptionConfig, error) {
	if !strings.EqualFold(strings.TrimSpace(name), AlgorithmAES256GCM) {
		return nil, fmt.Errorf("encryption algorithm %q is not supported (only %s): %w", name, AlgorithmAES256GCM, engine.ErrInvalid)
	}
	n := *c
	n.algorithm = AlgorithmAES256GCM
	return &n, nil
}

// Algorithm returns the algorithm name.
func (c *EncryptionConfig) Algorithm() string { return c.algorithm }

// HasKey reports whether a key is set.
func (c *EncryptionConfig) HasKey() bool { return c != nil && c.aead != nil }

// Overhead implements engine.PageCipher.
func (c *EncryptionConfig) Overhead() int { return Overhead }

func aad(pageID uint64) []byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], pageID)
	return b[:]
}

// Seal implements engine.PageCipher: a random nonce, then the ciphertext
// and tag of plain, authenticated with the page id. It panics without a
// key (engine.Open never calls it then: configure the key first).
func (c *EncryptionConfig) Seal(pageID uint64, plain []byte) []byte {
	if !c.HasKey() {
		panic(ErrNoKey)
	}
	out := make([]byte, nonceSize, nonceSize+len(plain)+tagSize)
	if _, err := rand.Read(out); err != nil {
		panic(fmt.Errorf("encryption: random nonce: %w", err))
	}
	return c.aead.Seal(out, out[:nonceSize], plain, aad(pageID))
}

// Open implements engine.PageCipher.
func (c *EncryptionConfig) Open(pageID uint64, sealed []byte) ([]byte, error) {
	if !c.HasKey() {
		return nil, ErrNoKey
	}
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("sealed page of %d bytes: %w", len(sealed), engine.ErrCorrupt)
	}
	return c.aead.Open(nil, sealed[:nonceSize], sealed[nonceSize:], aad(pageID))
}
