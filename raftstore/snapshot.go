package raftstore

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"vane/internal/atomicfile"
)

// Snapshot opens a read transaction now, on the FSM goroutine, so the snapshot
// is exactly the state at raft's applied index; Persist then streams it while
// applies continue on other transactions.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	tx, err := f.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("cannot begin snapshot transaction: %w", err)
	}
	return &fsmSnapshot{tx: tx, dir: filepath.Dir(f.path)}, nil
}

// fsmSnapshot is a consistent read transaction of the state file.
type fsmSnapshot struct {
	tx  *bolt.Tx
	dir string // where the compacted copy is written before it is streamed
}

// snapshotTmpPattern names the compacted copies Persist writes beside the
// state file; one left by a crash is removed by the next Persist.
const snapshotTmpPattern = "snapshot-*.tmp"

// compactTxBytes bounds one write transaction of the compacted copy: bbolt
// keeps a transaction's dirty pages in memory until it commits.
const compactTxBytes = 64 << 20

// Persist writes the state as of the snapshot's transaction, compacted: a
// fresh bbolt file holding only the live keys, streamed to the sink. A raw
// copy (tx.WriteTo) would carry every free page of the state file, which
// bbolt never gives back: after retention deleted most jobs, the snapshot
// (and the state file of a node restoring it) would stay at the file's
// high-water mark.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.persist(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("cannot write snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) persist(w io.Writer) error {
	if stale, err := filepath.Glob(filepath.Join(s.dir, snapshotTmpPattern)); err == nil {
		for _, p := range stale { // raft runs one Persist at a time
			_ = os.Remove(p)
		}
	}
	tmp, err := os.CreateTemp(s.dir, snapshotTmpPattern)
	if err != nil {
		return err
	}
	path := tmp.Name()
	tmp.Close()
	defer os.Remove(path)
	// No fsync: the copy is streamed to the sink, which syncs, and removed.
	dst, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true, NoFreelistSync: true})
	if err != nil {
		return err
	}
	defer dst.Close()
	if err := compactInto(dst, s.tx, compactTxBytes); err != nil {
		return err
	}
	return dst.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(w)
		return err
	})
}

// compactInto copies every bucket of src (the store's buckets are flat: no
// nested buckets, no sequences) into dst in key order, committing every
// maxTxBytes. Keys and values are src's mmap'd memory, valid while src is
// open, which outlives the copy.
func compactInto(dst *bolt.DB, src *bolt.Tx, maxTxBytes int) error {
	tx, err := dst.Begin(true)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // after Commit, a no-op
	size := 0
	err = src.ForEach(func(name []byte, b *bolt.Bucket) error {
		to, err := tx.CreateBucketIfNotExists(name)
		if err != nil {
			return err
		}
		to.FillPercent = 0.9 // keys arrive in order: fill pages
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return fmt.Errorf("bucket %s holds a nested bucket %q, which the copy does not handle", name, k)
			}
			if size += len(k) + len(v); size > maxTxBytes {
				if err := tx.Commit(); err != nil {
					return err
				}
				if tx, err = dst.Begin(true); err != nil {
					return err
				}
				to = tx.Bucket(name)
				to.FillPercent = 0.9
				size = len(k) + len(v)
			}
			return to.Put(k, v)
		})
	})
	if err != nil {
		return err
	}
	return tx.Commit()
}

// Release ends the read transaction.
func (s *fsmSnapshot) Release() { _ = s.tx.Rollback() }

// Restore replaces the state file with the snapshot: it writes the stream to a
// temporary file beside the state file, syncs it, checks that bbolt opens it,
// and renames it over the state file, so a crash leaves either the old or the
// new file. Raft calls it on the FSM goroutine, never concurrently with applies.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	tmp := f.path + ".restore"
	_ = os.Remove(tmp)
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("cannot create restore file: %w", err)
	}
	if _, err := io.Copy(out, rc); err != nil {
		out.Close()
		return fmt.Errorf("cannot write restore file: %w", err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("cannot sync restore file: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("cannot close restore file: %w", err)
	}
	check, err := bolt.Open(tmp, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("snapshot is not a state file: %w", err)
	}
	check.Close()

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db != nil {
		if err := f.db.Close(); err != nil {
			return fmt.Errorf("cannot close state file for restore: %w", err)
		}
		f.db = nil
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return fmt.Errorf("cannot replace state file: %w", err)
	}
	if err := atomicfile.SyncDir(f.path); err != nil {
		return err
	}
	if err := f.openDB(); err != nil {
		return err
	}
	f.appliedMu.Lock()
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	f.appliedMu.Unlock()
	f.wakeAll()
	f.restores.Add(1)
	return nil
}
