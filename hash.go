package vane

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
)

// Hash identifies a script or flow version: a 64-bit value shown as 16 lowercase
// hex characters, big-endian, as Windmill's ScriptHash.
type Hash string

// ParseHash checks that s is 16 lowercase hex characters.
func ParseHash(s string) (Hash, error) {
	if len(s) != 16 {
		return "", Invalidf("hash %q must be 16 hex characters", s)
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", Invalidf("hash %q must be lowercase hex", s)
		}
	}
	return Hash(s), nil
}

// HashOf returns the stable hash of the given parts: the first 8 bytes of the
// SHA-256 of each part's length and bytes in order. Equal parts give equal hashes
// on every node and every version of vane.
func HashOf(parts ...string) Hash {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	sum := h.Sum(nil)
	return Hash(hex.EncodeToString(sum[:8]))
}

// ScriptHash computes the hash of a new script version from its content and metadata.
func ScriptHash(s *Script) Hash {
	parent := ""
	if len(s.ParentHashes) > 0 {
		parent = string(s.ParentHashes[0])
	}
	return HashOf(s.Workspace, s.Path, string(s.Language), s.Content, s.Summary, s.Description,
		string(s.Schema), s.Lock, s.Kind, s.Tag, parent, strconv.Itoa(s.Timeout),
		strconv.FormatBool(s.DedicatedWorker), strconv.FormatInt(s.CreatedAt.UnixNano(), 10))
}
