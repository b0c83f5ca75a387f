package raftstore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// Variable and resource values are sealed with AES-256-GCM under a
// per-workspace data key (DEK). The DEK is created by the proposer of
// CreateWorkspace and stored wrapped (AES-256-GCM) under the node's master
// key, so neither the log, the snapshots nor the state file hold a usable key
// or a plain value: the proposer seals values before proposing. The
// workspace id is the associated data of the wrapped key; a value's
// associated data binds it to its workspace, its kind and its path
// (boundValueAD), so a ciphertext moved anywhere else fails to open. The
// record formats and their migration are in sealed.go.

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
	return sealWith(g, plain, ad)
}

// sealWith is seal with the key's AEAD already made: a random nonce, then
// the ciphertext and tag.
func sealWith(g cipher.AEAD, plain, ad []byte) ([]byte, error) {
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
	return openWith(g, sealed, ad)
}

// openWith is open with the key's AEAD already made (a cached one).
func openWith(g cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < g.NonceSize() {
		return nil, fmt.Errorf("sealed value is too short")
	}
	return g.Open(nil, sealed[:g.NonceSize()], sealed[g.NonceSize():], ad)
}

func dekAD(ws string) []byte { return []byte("vane-dek\x00" + ws) }

// legacyValueAD is the associated data of a secret variable in record format
// 0: its workspace only, so such a ciphertext opens at any path of it.
func legacyValueAD(ws string) []byte { return []byte("vane-var\x00" + ws) }

// boundValueAD is the associated data of a value in record format 1: the
// format, the kind (variable or resource), the workspace and the path.
// Workspace ids and paths never hold a zero byte (they are validated to a
// small alphabet), so the parts cannot run into each other.
func boundValueAD(kind valueKind, ws, path string) []byte {
	return appendBoundValueAD(nil, kind, ws, path)
}

// appendBoundValueAD appends boundValueAD(kind, ws, path) to b.
func appendBoundValueAD(b []byte, kind valueKind, ws, path string) []byte {
	const label = "vane-value\x00v1\x00"
	b = slices.Grow(b, len(label)+len(kind)+len(ws)+len(path)+2)
	b = append(b, label...)
	b = append(b, kind...)
	b = append(b, 0)
	b = append(b, ws...)
	b = append(b, 0)
	return append(b, path...)
}

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

// workspaceKey is a workspace's unwrapped data key, ready to use, and its
// seal phase, as of record: the exact bytes of the workspace record they
// were read from.
type workspaceKey struct {
	record []byte
	dek    []byte
	// aead is AES-256-GCM with dek. The standard library's AES-GCM keeps
	// no mutable state after construction (golang/go#41689), so one serves
	// concurrent reads.
	aead  cipher.AEAD
	phase sealPhase
}

// keyCache keeps each workspace's workspaceKey. A read compares the bytes of
// the workspace record in its transaction with the entry's (cheap) instead
// of decoding the record and unwrapping the key (a third of a GetVariable's
// time); a changed record (a new phase, new settings) misses and is read
// again, so an entry is never used for a record it did not come from.
type keyCache struct {
	mu sync.RWMutex // guards m
	m  map[string]*workspaceKey
}

// maxCachedKeys bounds the cache; past it, the cache starts over.
const maxCachedKeys = 4096

// workspaceKey returns ws's data key and seal phase as of tx.
func (s *Store) workspaceKey(tx *bolt.Tx, ws string) (*workspaceKey, error) {
	raw := tx.Bucket(bucketWorkspaces).Get([]byte(ws))
	if raw == nil {
		return nil, notFound("workspace", ws)
	}
	s.keys.mu.RLock()
	k := s.keys.m[ws]
	s.keys.mu.RUnlock()
	if k != nil && bytes.Equal(k.record, raw) {
		return k, nil
	}
	var r workspaceRecord
	if err := unmarshal(raw, &r); err != nil {
		return nil, err
	}
	dek, err := open(s.masterKey, r.XWrappedKey, dekAD(ws))
	if err != nil {
		return nil, fmt.Errorf("cannot unwrap the data key of %s (is this node's master key the cluster's?): %w", ws, vane.ErrUnavailable)
	}
	g, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	k = &workspaceKey{record: append([]byte(nil), raw...), dek: dek, aead: g, phase: r.XSealPhase}
	s.keys.mu.Lock()
	if s.keys.m == nil || len(s.keys.m) >= maxCachedKeys {
		s.keys.m = map[string]*workspaceKey{}
	}
	s.keys.m[ws] = k
	s.keys.mu.Unlock()
	return k, nil
}

// dataKey returns ws's unwrapped data key from the local state.
func (s *Store) dataKey(ws string) ([]byte, error) {
	var dek []byte
	err := s.fsm.view(func(tx *bolt.Tx) error {
		k, err := s.workspaceKey(tx, ws)
		if err == nil {
			dek = k.dek
		}
		return err
	})
	return dek, err
}

// sealValue seals the value of the kind at ws/path for a command (record
// format 1).
func (s *Store) sealValue(kind valueKind, ws, path string, plain []byte) ([]byte, error) {
	var sealed []byte
	err := s.fsm.view(func(tx *bolt.Tx) error {
		k, err := s.workspaceKey(tx, ws)
		if err != nil {
			return err
		}
		sealed, err = sealWith(k.aead, plain, boundValueAD(kind, ws, path))
		return err
	})
	return sealed, err
}
