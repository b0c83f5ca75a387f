package vane

import (
	"errors"
	"fmt"
)

// Sentinel errors shared by every layer. Wrap them once with %w and a short
// lowercase prefix; api maps them to HTTP status codes in one place.
var (
	// ErrNotFound: the object does not exist, or exists in another workspace.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: an object with that key (path, job id, hash) exists.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: the write raced another one (e.g. parent_hash is not HEAD).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input is malformed or violates a rule; the message says which.
	ErrInvalid = errors.New("invalid input")
	// ErrTooLarge: a value exceeds its size limit.
	ErrTooLarge = errors.New("too large")
	// ErrUnauthorized: no credentials, or credentials that are unknown, expired or revoked.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: valid credentials without the right to do this.
	ErrForbidden = errors.New("forbidden")
	// ErrNotLeader: this node is not the Raft leader; see NotLeaderError for where it is.
	ErrNotLeader = errors.New("not the leader")
	// ErrUnavailable: no leader is reachable, or the node is shutting down.
	ErrUnavailable = errors.New("unavailable")
	// ErrIndeterminate: the write may or may not have been applied; retry with the same id.
	ErrIndeterminate = errors.New("outcome unknown")
	// ErrStaleEpoch: a lease operation carried an epoch that is no longer current.
	ErrStaleEpoch = errors.New("stale lease epoch")
	// ErrJobFinished: the job has already completed (or was canceled).
	ErrJobFinished = errors.New("job already finished")
	// ErrTimeout: a wait ran out of time.
	ErrTimeout = errors.New("timeout")
	// ErrDiskFull: the node's data dir has too little free space to take a
	// write that adds data; reads and writes that finish work go on.
	ErrDiskFull = errors.New("disk full")
	// ErrQuotaExceeded: the workspace's storage quota would be exceeded.
	ErrQuotaExceeded = errors.New("quota exceeded")
)

// NotLeaderError is returned by writes on a follower. It wraps ErrNotLeader and
// carries the leader's Raft address and id when known (empty when there is none).
type NotLeaderError struct {
	LeaderAddr string
	LeaderID   string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderAddr == "" {
		return "not the leader (no leader known)"
	}
	return fmt.Sprintf("not the leader (leader is %s at %s)", e.LeaderID, e.LeaderAddr)
}

// Unwrap makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

// Invalidf returns an error that matches ErrInvalid (errors.Is) and whose
// message is exactly the formatted text, so a client sees what is wrong and
// nothing else.
func Invalidf(format string, args ...any) error {
	return &sentinelError{msg: fmt.Sprintf(format, args...), sentinel: ErrInvalid}
}

// sentinelError is a message that matches one sentinel without repeating its text.
type sentinelError struct {
	msg      string
	sentinel error
}

func (e *sentinelError) Error() string { return e.msg }
func (e *sentinelError) Unwrap() error { return e.sentinel }
