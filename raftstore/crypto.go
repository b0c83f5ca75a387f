package raftstore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// Secret variables are sealed with AES-256-GCM under a per-workspace data key
// (DEK). The DEK is created by the proposer of CreateWorkspace and stored
// wrapped (AES-256-GCM) under the node's master key, so neither the log, the
// snapshots nor the state file hold a usable key or a plain secret: the
// proposer seals values before proposing. The workspace id is the associated
// data of both layers, so a ciphertext moved to another workspace fails to open.

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func seal(key []byte, plain, ad []byte) ([]byte, error) {
	g, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize(), g.NonceSize()+len(plain)+g.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return g.Seal(nonce, nonce, plain, ad), nil
}

func open(key []byte, sealed, ad []byte) ([]byte, error) {
	g, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < g.NonceSize() {
		return nil, fmt.Errorf("sealed value is too short")
	}
	return g.Open(nil, sealed[:g.NonceSize()], sealed[g.NonceSize():], ad)
}

func dekAD(ws string) []byte   { return []byte("vane-dek\x00" + ws) }
func valueAD(ws string) []byte { return []byte("vane-var\x00" + ws) }

// newWrappedDataKey creates a workspace data key wrapped with the master key.
func (s *Store) newWrappedDataKey(ws string) ([]byte, error) {
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		return nil, fmt.Errorf("cannot create data key: %w", err)
	}
	w, err := seal(s.masterKey, dek, dekAD(ws))
	if err != nil {
		return nil, fmt.Errorf("cannot wrap data key: %w", err)
	}
	return w, nil
}

// dataKey returns ws's unwrapped data key from the local state.
func (s *Store) dataKey(ws string) ([]byte, error) {
	var r workspaceRecord
	err := s.fsm.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketWorkspaces).Get([]byte(ws))
		if v == nil {
			return notFound("workspace", ws)
		}
		return unmarshal(v, &r)
	})
	if err != nil {
		return nil, err
	}
	dek, err := open(s.masterKey, r.XWrappedKey, dekAD(ws))
	if err != nil {
		return nil, fmt.Errorf("cannot unwrap the data key of %s (is this node's master key the cluster's?): %w", ws, vane.ErrUnavailable)
	}
	return dek, nil
}

func (s *Store) sealValue(ws, value string) ([]byte, error) {
	dek, err := s.dataKey(ws)
	if err != nil {
		return nil, err
	}
	return seal(dek, []byte(value), valueAD(ws))
}

func (s *Store) openValue(ws string, sealed []byte) (string, error) {
	dek, err := s.dataKey(ws)
	if err != nil {
		return "", err
	}
	p, err := open(dek, sealed, valueAD(ws))
	if err != nil {
		return "", fmt.Errorf("cannot decrypt secret in %s: %w", ws, vane.ErrUnavailable)
	}
	return string(p), nil
}
