package raftstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"vane"
)

// Blobs are content-addressed bytes a workspace's deployments need on every
// node: the wheels of a Python script's lock, so that a node that never
// reached the package index runs the script from the lock alone. They are
// replicated like every other entity and keyed by workspace, so a lock
// written in one workspace cannot name another's private package. A blob is
// never rewritten (the same sum is the same bytes) and is kept while the
// workspace is: locks of old versions may name it. Blobs count towards the
// workspace's quota.

// MaxBlobBytes bounds one blob; a larger wheel fails its deployment.
const MaxBlobBytes = 16 << 20

type putBlobCmd struct {
	base
	Workspace string `json:"ws"`
	Sum       string `json:"sum"` // sha256 of Data, lowercase hex
	Data      []byte `json:"data"`
}

func (c *putBlobCmd) cmdType() cmdType { return cmdPutBlob }
func (c *putBlobCmd) validate() error {
	if err := validateWorkspaceID(c.Workspace); err != nil {
		return err
	}
	if len(c.Data) == 0 || len(c.Data) > MaxBlobBytes {
		return vane.Invalidf("a blob is 1 to %d bytes, not %d", MaxBlobBytes, len(c.Data))
	}
	if err := validateBlobSum(c.Sum); err != nil {
		return err
	}
	// Checked again on every node's apply: the sum names the bytes.
	if got := blobSum(c.Data); got != c.Sum {
		return vane.Invalidf("the blob's sha256 is %s, not %s", got, c.Sum)
	}
	return c.validateBase()
}

func (c *putBlobCmd) apply(a *applier) (output, error) {
	if a.bucket(bucketWorkspaces).Get([]byte(c.Workspace)) == nil {
		return output{}, notFound("workspace", c.Workspace)
	}
	b := a.bucket(bucketBlobs)
	k := key(c.Workspace, c.Sum)
	if b.Get(k) == nil {
		put(b, k, c.Data)
		a.addUsage(c.Workspace, len(c.Data))
	}
	return output{}, nil
}

func blobSum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func validateBlobSum(sum string) error {
	if len(sum) != sha256.Size*2 {
		return vane.Invalidf("a blob's sum is 64 lowercase hex digits, not %q", sum)
	}
	for _, r := range sum {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return vane.Invalidf("a blob's sum is 64 lowercase hex digits, not %q", sum)
		}
	}
	return nil
}

// PutBlob stores data in workspace ws under its sha256, which it returns. A
// blob this node already has is not proposed again. Blobs count towards the
// workspace's quota (usage.go).
func (s *Store) PutBlob(ctx context.Context, ws string, data []byte) (string, error) {
	sum := blobSum(data)
	if ok, err := s.HasBlob(ws, sum); err != nil || ok {
		return sum, err
	}
	if err := s.checkQuota(ws, len(data)); err != nil {
		return "", wrapErr("store the blob", err)
	}
	_, err := s.apply(ctx, &putBlobCmd{base: base{At: stampNow()}, Workspace: ws, Sum: sum, Data: data})
	return sum, wrapErr("store the blob", err)
}

// HasBlob says whether this node holds workspace ws's blob sum.
func (s *Store) HasBlob(ws, sum string) (bool, error) {
	if err := validateBlobSum(sum); err != nil {
		return false, err
	}
	var ok bool
	err := s.fsm.view(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucketBlobs).Get(key(ws, sum)) != nil
		return nil
	})
	return ok, err
}

// Blob returns workspace ws's blob sum as this node holds it: ErrNotFound if
// it has none (yet: a follower may not have applied it).
func (s *Store) Blob(ws, sum string) ([]byte, error) {
	if err := validateBlobSum(sum); err != nil {
		return nil, err
	}
	var out []byte
	err := s.fsm.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBlobs).Get(key(ws, sum))
		if v == nil {
			return notFound("blob", sum)
		}
		out = append([]byte(nil), v...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot get blob: %w", err)
	}
	return out, nil
}
