package raftstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"vane"
)

// proposal is one command waiting for its place in a log entry.
type proposal struct {
	cmd  encodedCommand
	done chan cmdResult // buffered(1)
}

// maxInflightEntries bounds the entries the proposer has handed to raft and
// not yet seen applied (see runProposer). 2 lets one entry be written while
// the previous one is applied; measured against 1 and 4 (DESIGN.md).
const maxInflightEntries = 2

// maxEntryBytes bounds the commands packed into one entry; a single larger
// command still goes alone.
const maxEntryBytes = 1 << 20

// Forwarder sends a follower's writes and read-index requests to the leader.
// The HTTP layer implements it (the leader side calls ApplyEncoded and
// ReadIndex); without one, a follower's writes return *vane.NotLeaderError.
type Forwarder interface {
	// Forward submits an encoded log entry on the leader and returns the
	// encoded results (the leader's ApplyEncoded).
	Forward(ctx context.Context, leaderAddr, leaderID string, entry []byte) ([]byte, error)
	// ReadIndex returns the leader's read index (the leader's ReadIndex).
	ReadIndex(ctx context.Context, leaderAddr, leaderID string) (uint64, error)
}

// SetForwarder installs the forwarder used on followers (nil removes it).
func (s *Store) SetForwarder(f Forwarder) {
	s.fwdMu.Lock()
	s.fwd = f
	s.fwdMu.Unlock()
}

func (s *Store) forwarder() Forwarder {
	s.fwdMu.RLock()
	defer s.fwdMu.RUnlock()
	return s.fwd
}

// apply validates and encodes c, proposes it and returns its outcome. On the
// leader, concurrent commands are packed into shared log entries by
// runProposer (group commit); on a follower the command is forwarded or
// refused with *vane.NotLeaderError.
func (s *Store) apply(ctx context.Context, c command) (output, error) {
	enc, err := encodeCommand(c)
	if err != nil {
		return output{}, err
	}
	select {
	case <-s.stop:
		return output{}, fmt.Errorf("store closed: %w", vane.ErrUnavailable)
	default:
	}
	if err := s.disk.admit(c); err != nil {
		return output{}, err
	}
	s.awaitLeader(ctx)
	if !s.IsLeader() {
		fwd := s.forwarder()
		if fwd == nil {
			return output{}, s.notLeader()
		}
		addr, id := s.Leader()
		if addr == "" {
			return output{}, s.notLeader()
		}
		b, err := fwd.Forward(ctx, addr, id, encodeEntry([]encodedCommand{enc}))
		if err != nil {
			return output{}, err
		}
		res, err := decodeResults(b)
		if err != nil {
			return output{}, err
		}
		if len(res) != 1 {
			return output{}, fmt.Errorf("leader returned %d results for one command: %w", len(res), vane.ErrIndeterminate)
		}
		// Read your writes: answer once this node's own state holds the
		// entry, so the caller's next local read sees it (a follower's
		// run_wait_result waits on the job it just pushed).
		if idx := res[0].out.Index; idx > 0 {
			_ = s.fsm.waitApplied(ctx, idx)
		}
		return res[0].out, res[0].err
	}
	r := s.propose(ctx, enc)
	return r.out, r.err
}

// propose queues one encoded command for the next entry and waits for its
// outcome (leader side).
func (s *Store) propose(ctx context.Context, enc encodedCommand) cmdResult {
	p, err := s.submit(ctx, enc)
	if err != nil {
		return cmdResult{err: err}
	}
	return s.await(ctx, p)
}

func (s *Store) submit(ctx context.Context, enc encodedCommand) (*proposal, error) {
	p := &proposal{cmd: enc, done: make(chan cmdResult, 1)}
	select {
	case s.proposals <- p:
		return p, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("cannot propose: %w: %w", ctx.Err(), vane.ErrUnavailable)
	case <-s.stop:
		return nil, fmt.Errorf("cannot propose: store closed: %w", vane.ErrUnavailable)
	}
}

func (s *Store) await(ctx context.Context, p *proposal) cmdResult {
	select {
	case r := <-p.done:
		return r
	case <-ctx.Done():
		return cmdResult{err: fmt.Errorf("gave up waiting for the outcome: %w: %w", ctx.Err(), vane.ErrIndeterminate)}
	case <-s.stop:
		// The proposal may have reached the log before raft stopped.
		select {
		case r := <-p.done:
			return r
		case <-time.After(s.cfg.ApplyTimeout):
			return cmdResult{err: fmt.Errorf("store closed before the outcome was known: %w", vane.ErrIndeterminate)}
		}
	}
}

// runProposer packs waiting proposals into log entries: once fewer than
// maxInflightEntries entries are in flight, it takes whatever has queued up
// meanwhile, up to MaxBatchCommands or maxEntryBytes, hands the entry to raft
// and lets deliver wait for its outcome, so the next entry forms while the
// previous ones are written and applied.
func (s *Store) runProposer() {
	defer s.wg.Done()
	for {
		// At most maxInflightEntries entries between raft.Apply and their
		// outcome: while they are written and applied, new proposals queue
		// up and go together in the next entry (group commit).
		select {
		case s.inflight <- struct{}{}:
		case <-s.stop:
			s.failPending()
			return
		}
		var first *proposal
		select {
		case first = <-s.proposals:
		case <-s.stop:
			s.failPending()
			return
		}
		batch := []*proposal{first}
		size := len(first.cmd.body)
	fill:
		for len(batch) < s.cfg.MaxBatchCommands && size < maxEntryBytes {
			select {
			case p := <-s.proposals:
				batch = append(batch, p)
				size += len(p.cmd.body)
			default:
				break fill
			}
		}
		cmds := make([]encodedCommand, len(batch))
		for i, p := range batch {
			cmds[i] = p.cmd
		}
		f := s.raft.Apply(encodeEntry(cmds), s.cfg.ApplyTimeout)
		go s.deliver(f, batch)
	}
}

// failPending answers proposals left in the queue at shutdown.
func (s *Store) failPending() {
	for {
		select {
		case p := <-s.proposals:
			p.done <- cmdResult{err: fmt.Errorf("store closed: %w", vane.ErrUnavailable)}
		default:
			return
		}
	}
}

func (s *Store) deliver(f raft.ApplyFuture, batch []*proposal) {
	err := f.Error()
	<-s.inflight
	var res entryResult
	if err == nil {
		res, _ = f.Response().(entryResult)
		if res.err == nil && len(res.results) != len(batch) {
			res.err = fmt.Errorf("entry applied with %d results for %d commands: %w", len(res.results), len(batch), vane.ErrIndeterminate)
		}
	} else {
		res.err = s.raftErr(err)
	}
	for i, p := range batch {
		if res.err != nil {
			p.done <- cmdResult{err: res.err}
		} else {
			r := res.results[i]
			r.out.Index = f.Index()
			p.done <- r
		}
	}
}

// awaitLeader waits a few election timeouts for a leader when none is known
// (a restart, an election in progress), so that requests arriving then are
// served instead of refused. It returns early if ctx ends.
func (s *Store) awaitLeader(ctx context.Context) {
	if addr, _ := s.Leader(); addr != "" {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, 5*s.cfg.ElectionTimeout)
	defer cancel()
	_ = s.WaitLeader(wctx)
}

// raftErr maps raft's errors to vane's sentinels.
func (s *Store) raftErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return s.notLeader()
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("%v: %w", err, vane.ErrIndeterminate)
	case errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%v: %w", err, vane.ErrUnavailable)
	}
	return err
}

// ApplyEncoded runs the commands of an already encoded log entry (one a
// follower built and forwarded) and returns their encoded results, which the
// follower's Store decodes. Leader only; on a follower it returns
// *vane.NotLeaderError. The entry is decoded and validated first: a malformed
// envelope is refused whole, an invalid command gets its error without
// reaching the log, and the valid ones join the leader's own proposals in
// group-committed entries.
func (s *Store) ApplyEncoded(ctx context.Context, entry []byte) ([]byte, error) {
	cmds, errs, err := decodeEntry(entry)
	if err != nil {
		return nil, err
	}
	raw, _ := splitEntry(entry)
	for i, c := range cmds {
		if errs[i] == nil {
			errs[i] = s.disk.admit(c) // the leader's disk too
		}
	}
	if !s.IsLeader() {
		return nil, s.notLeader()
	}
	results := make([]cmdResult, len(raw))
	props := make([]*proposal, len(raw))
	for i, enc := range raw {
		if errs[i] != nil {
			results[i].err = errs[i]
			continue
		}
		// Copy: the caller may reuse entry (a server's request buffer) once
		// we return, possibly before a proposal left the queue.
		enc.body = append([]byte(nil), enc.body...)
		if props[i], err = s.submit(ctx, enc); err != nil {
			results[i].err = err
		}
	}
	for i, p := range props {
		if p != nil {
			results[i] = s.await(ctx, p)
		}
	}
	return encodeResults(results), nil
}

// wireResult is one command's outcome on the wire between nodes.
type wireResult struct {
	Out  output `json:"out"`
	Code string `json:"code,omitempty"` // the sentinel, see errorCodes
	Msg  string `json:"msg,omitempty"`
}

// errorCodes names the sentinels that survive forwarding.
var errorCodes = map[string]error{
	"not_found": vane.ErrNotFound, "already_exists": vane.ErrAlreadyExists, "conflict": vane.ErrConflict,
	"invalid": vane.ErrInvalid, "too_large": vane.ErrTooLarge, "unauthorized": vane.ErrUnauthorized,
	"forbidden": vane.ErrForbidden, "not_leader": vane.ErrNotLeader, "unavailable": vane.ErrUnavailable,
	"indeterminate": vane.ErrIndeterminate, "stale_epoch": vane.ErrStaleEpoch,
	"job_finished": vane.ErrJobFinished, "timeout": vane.ErrTimeout,
	"disk_full": vane.ErrDiskFull, "quota_exceeded": vane.ErrQuotaExceeded,
}

func encodeResults(rs []cmdResult) []byte {
	w := make([]wireResult, len(rs))
	for i, r := range rs {
		w[i].Out = r.out
		if r.err != nil {
			w[i].Msg = r.err.Error()
			w[i].Code = "internal"
			for code, sentinel := range errorCodes {
				if errors.Is(r.err, sentinel) {
					w[i].Code = code
					break
				}
			}
		}
	}
	return marshal(w)
}

// remoteError is an error that happened on the leader: its message, and the
// sentinel it wrapped there.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// decodeResults decodes what ApplyEncoded returned on the leader.
func decodeResults(b []byte) ([]cmdResult, error) {
	var w []wireResult
	if err := codec.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("cannot decode forwarded results: %v: %w", err, vane.ErrIndeterminate)
	}
	rs := make([]cmdResult, len(w))
	for i, r := range w {
		rs[i].out = r.Out
		if r.Code != "" {
			rs[i].err = &remoteError{msg: r.Msg, sentinel: errorCodes[r.Code]}
		}
	}
	return rs, nil
}

// VerifyLeader confirms with a quorum that this node still leads, so that a
// read that follows is linearizable. Concurrent calls share one round trip.
// On a follower it returns *vane.NotLeaderError.
func (s *Store) VerifyLeader(ctx context.Context) error {
	if !s.IsLeader() {
		return s.notLeader()
	}
	if err := s.verifier.verify(ctx); err != nil {
		return s.raftErr(err)
	}
	return nil
}

// ReadIndex returns an index such that local state at or past it reflects
// every write acknowledged before the call. A leader that has applied every
// entry of earlier terms (see watchLeadership) confirms its leadership with
// VerifyLeader and returns its applied index; a leader that has not yet
// proposes a read barrier (a command that changes nothing) and returns its
// index. A follower asks the leader through its Forwarder (or returns
// *vane.NotLeaderError). A forwarding layer serves a follower's ReadIndex by
// calling this on the leader.
func (s *Store) ReadIndex(ctx context.Context) (uint64, error) {
	s.awaitLeader(ctx)
	if s.IsLeader() {
		if s.leaderCaughtUp() {
			idx := s.fsm.applied.Load()
			if err := s.VerifyLeader(ctx); err != nil {
				return 0, err
			}
			return idx, nil
		}
		out, err := s.apply(ctx, &readBarrierCmd{base: base{At: stampNow()}})
		if err != nil {
			return 0, err
		}
		return out.Index, nil
	}
	fwd := s.forwarder()
	addr, id := s.Leader()
	if fwd == nil || addr == "" {
		return 0, s.notLeader()
	}
	return fwd.ReadIndex(ctx, addr, id)
}

// Barrier returns once this node's state reflects every write acknowledged
// (anywhere in the cluster) before the call: a linearizable read point. On a
// restarted node it also means the log has been replayed.
func (s *Store) Barrier(ctx context.Context) error {
	idx, err := s.ReadIndex(ctx)
	if err != nil {
		return fmt.Errorf("cannot pass a read barrier: %w", err)
	}
	return s.fsm.waitApplied(ctx, idx)
}

// leaderCaughtUp reports whether this leader has applied every entry
// committed before its term began, so that its local state holds every
// acknowledged write (writes of its own term are applied before they are
// acknowledged).
func (s *Store) leaderCaughtUp() bool {
	t := s.readyTerm.Load()
	return t != 0 && t == s.raft.CurrentTerm()
}

// markCaughtUp runs when this node becomes leader: raft's Barrier returns once
// every earlier entry is applied to the FSM.
func (s *Store) markCaughtUp() {
	term := s.raft.CurrentTerm()
	if err := s.raft.Barrier(s.cfg.ApplyTimeout).Error(); err != nil {
		return
	}
	if s.raft.CurrentTerm() == term && s.IsLeader() {
		s.readyTerm.Store(term)
	}
}

// verifier coalesces VerifyLeader calls: callers that arrive while a round is
// in flight join the next round (which starts after they arrived, as
// linearizability requires), so N concurrent callers cost about two rounds.
type verifier struct {
	raft *raft.Raft
	// mu guards running and next.
	mu      sync.Mutex
	running bool
	next    *verifyRound
}

type verifyRound struct {
	done chan struct{}
	err  error
}

func (v *verifier) verify(ctx context.Context) error {
	v.mu.Lock()
	if v.next == nil {
		v.next = &verifyRound{done: make(chan struct{})}
	}
	r := v.next
	if !v.running {
		v.running = true
		go v.loop()
	}
	v.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return fmt.Errorf("cannot verify leadership: %w: %w", ctx.Err(), vane.ErrTimeout)
	}
}

func (v *verifier) loop() {
	for {
		v.mu.Lock()
		r := v.next
		v.next = nil
		if r == nil {
			v.running = false
			v.mu.Unlock()
			return
		}
		v.mu.Unlock()
		r.err = v.raft.VerifyLeader().Error()
		close(r.done)
	}
}

// stampNow is the proposer's clock, the only clock commands see.
func stampNow() time.Time { return time.Now().UTC().Round(0) }
