package cluster

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"vane"
	"vane/internal/atomicfile"
)

// SecretBytes is the size of a cluster secret.
const SecretBytes = 32

// Secret is the cluster secret: 32 random bytes made when the first node
// bootstraps and handed to every node that joins (--cluster-secret-file).
// The cluster CA's key is derived from it (tls.go), and so is the key that
// seals the master key for a joining node; it never travels itself.
type Secret []byte

// NewSecret returns a fresh random secret.
func NewSecret() (Secret, error) {
	b := make([]byte, SecretBytes)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("cannot make cluster secret: %w", err)
	}
	return b, nil
}

// ParseSecret reads a secret in its file form: 64 hex digits, surrounding
// white space ignored.
func ParseSecret(text string) (Secret, error) {
	b, err := hex.DecodeString(strings.TrimSpace(text))
	if err != nil || len(b) != SecretBytes {
		return nil, fmt.Errorf("cluster secret must be %d hex digits: %w", 2*SecretBytes, vane.ErrInvalid)
	}
	return b, nil
}

// String returns the file form of the secret.
func (s Secret) String() string { return hex.EncodeToString(s) }

// LoadSecret reads the secret file at path.
func LoadSecret(path string) (Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read cluster secret: %w", err)
	}
	s, err := ParseSecret(string(b))
	if err != nil {
		return nil, fmt.Errorf("cannot read cluster secret %s: %w", path, err)
	}
	return s, nil
}

// LoadOrCreateSecret returns the secret at path, creating the file with a new
// random secret (mode 0600, synced) when it does not exist.
func LoadOrCreateSecret(path string) (Secret, error) {
	s, err := LoadSecret(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return s, err
	}
	if s, err = NewSecret(); err != nil {
		return nil, err
	}
	if err := SaveSecret(path, s); err != nil {
		return nil, err
	}
	return s, nil
}

// SaveSecret writes s to path (mode 0600) through a synced temporary file.
func SaveSecret(path string, s Secret) error {
	if err := atomicfile.Write(path, []byte(s.String()+"\n")); err != nil {
		return fmt.Errorf("cannot write cluster secret: %w", err)
	}
	return nil
}

// derive returns HMAC-SHA256(secret, label).
func (s Secret) derive(label string) []byte {
	m := hmac.New(sha256.New, s)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// seal encrypts plain (the master key handed to a joining node) with a key
// derived from the secret, so that only a holder of the secret can read it
// even on an unencrypted connection.
func (s Secret) seal(plain []byte) ([]byte, error) {
	gcm, err := s.gcm()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("cannot make nonce: %w", err)
	}
	return gcm.Seal(nonce, nonce, plain, nil), nil
}

// open decrypts what seal made.
func (s Secret) open(sealed []byte) ([]byte, error) {
	gcm, err := s.gcm()
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize() {
		return nil, fmt.Errorf("cannot open sealed key: too short: %w", vane.ErrInvalid)
	}
	plain, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], nil)
	if err != nil {
		return nil, fmt.Errorf("cannot open sealed key (another cluster's secret?): %w", vane.ErrUnauthorized)
	}
	return plain, nil
}

func (s Secret) gcm() (cipher.AEAD, error) {
	block, err := aes.NewCipher(s.derive("vane master key wrap v1"))
	if err != nil {
		return nil, fmt.Errorf("cannot make cipher: %w", err)
	}
	return cipher.NewGCM(block)
}
