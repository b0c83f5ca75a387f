package raftstore

import (
	"fmt"
	"io"
	"os"

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
	return &fsmSnapshot{tx: tx}, nil
}

// fsmSnapshot is a consistent read transaction of the state file.
type fsmSnapshot struct{ tx *bolt.Tx }

// Persist writes the whole bbolt file as of the snapshot's transaction.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.tx.WriteTo(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("cannot write snapshot: %w", err)
	}
	return sink.Close()
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
