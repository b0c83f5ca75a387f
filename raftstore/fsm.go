package raftstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"vane"
)

// fsm is the replicated state machine: a bbolt file that every node updates by
// applying the same log. It implements raft.BatchingFSM: a batch of committed
// entries is applied in ONE bbolt write transaction, which is where group
// commit pays off on the state side.
type fsm struct {
	path   string
	noSync bool
	// stop is closed when the store closes: a commit waiting for disk space
	// gives up then (commitRetrying).
	stop <-chan struct{}
	log  *slog.Logger

	// mu guards db: Restore swaps the file under the write lock; applies and
	// reads hold the read lock for the length of their transaction.
	mu sync.RWMutex
	db *bolt.DB

	applied atomic.Uint64 // the last applied raft index, mirrored from bucketMeta
	clock   atomic.Int64  // the latest command time applied (unix ns), mirrored from bucketMeta
	queued  atomic.Int64  // number of queued jobs, mirrored from bucketQueue
	secret  atomic.Pointer[[]byte]
	// restores counts snapshot restores (installs from the leader, or restarts
	// after a crash); tests use it to see that a snapshot install happened.
	restores atomic.Int64

	// appliedMu guards appliedCh, closed and replaced after every applied batch.
	appliedMu sync.Mutex
	appliedCh chan struct{}

	// subMu guards subs and nextSub.
	subMu   sync.Mutex
	subs    map[int]chan vane.Event
	nextSub int

	// waitMu guards waiters: ws\x00id -> channels closed when the job completes.
	waitMu  sync.Mutex
	waiters map[string][]chan struct{}
}

var _ raft.BatchingFSM = (*fsm)(nil)

// maxClockRegress is how far behind the FSM clock a command's stamp may be
// and still be moved forward to it (see applier.clock).
const maxClockRegress = time.Minute

func openFSM(path string, noSync bool, stop <-chan struct{}, log *slog.Logger) (*fsm, error) {
	f := &fsm{path: path, noSync: noSync, stop: stop, log: log, appliedCh: make(chan struct{}),
		subs: map[int]chan vane.Event{}, waiters: map[string][]chan struct{}{}}
	if err := f.openDB(); err != nil {
		return nil, err
	}
	return f, nil
}

func boltOptions(noSync bool) *bolt.Options {
	return &bolt.Options{
		NoSync:          noSync,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: 1 << 30, // few remaps: a remap waits for every open read transaction
	}
}

// openDB opens f.path, creates missing buckets and loads the mirrors. Callers
// hold mu or own f exclusively.
func (f *fsm) openDB() error {
	db, err := bolt.Open(f.path, 0o600, boltOptions(f.noSync))
	if err != nil {
		return fmt.Errorf("cannot open state file %s: %w", f.path, err)
	}
	var applied uint64
	var clock int64
	var queued int
	var secret []byte
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(metaApplied); len(v) == 8 {
			applied = binary.BigEndian.Uint64(v)
		}
		if v := meta.Get(metaClock); len(v) == 8 {
			clock = int64(binary.BigEndian.Uint64(v))
		}
		if v := meta.Get(metaSecret); len(v) > 0 {
			secret = append([]byte(nil), v...)
		}
		queued = tx.Bucket(bucketQueue).Stats().KeyN
		if err := backfillDoneIndex(tx); err != nil {
			return err
		}
		return backfillUsage(tx)
	})
	if err != nil {
		db.Close()
		return fmt.Errorf("cannot initialize state file %s: %w", f.path, err)
	}
	f.db = db
	f.applied.Store(applied)
	f.clock.Store(clock)
	f.queued.Store(int64(queued))
	if secret != nil {
		f.secret.Store(&secret)
	} else {
		f.secret.Store(nil)
	}
	return nil
}

func (f *fsm) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db == nil {
		return nil
	}
	var err error
	if f.noSync {
		err = f.db.Sync()
	}
	if cerr := f.db.Close(); err == nil {
		err = cerr
	}
	f.db = nil
	return err
}

// view runs fn in a read-only transaction of the current state file.
func (f *fsm) view(fn func(tx *bolt.Tx) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return fmt.Errorf("state is closed: %w", vane.ErrUnavailable)
	}
	return f.db.View(fn)
}

// cmdResult is one command's outcome, delivered to its proposer.
type cmdResult struct {
	out output
	err error
}

// entryResult is the response of one log entry: one result per command, or
// err when the entry itself could not be decoded.
type entryResult struct {
	results []cmdResult
	err     error
}

// applier is the context of the commands applied in one batch.
type applier struct {
	// clock is the latest command time applied so far (unix ns). A command
	// stamped earlier than it (proposers race between stamping and
	// proposing, and a new leader's clock may lag the old one's) is applied
	// at clock instead, so time never goes backwards in log order: a claim
	// can never start before the lease it replaces expired. A stamp more
	// than maxClockRegress behind is taken as is (and resets clock): one
	// node with a clock far ahead must not hold time in the future for
	// good. It is stored with the applied index, so replays compute the
	// same times.
	clock     int64
	tx        *bolt.Tx
	index     uint64 // raft index of the entry being applied
	pos       int    // position of the command in its entry
	audits    uint64 // audit entries the current command has written
	pushes    uint64 // jobs the current command has pushed
	events    []vane.Event
	completed []string // ws\x00id of jobs completed in this batch
	queued    int64    // change in the number of queued jobs
	secret    []byte   // set when the instance secret is initialized
}

// seq is a number unique to this command, increasing with log order. It
// orders the job queue and the audit log and names new log chunks; using the
// raft index instead of a counter keeps replays deterministic for free.
func (a *applier) seq() uint64 { return a.index<<12 | uint64(a.pos) }

// jobSeq is the queue and listing order of the next job the current command
// pushes: its seq with the job's rank in the command below it, since one
// command may push several jobs (a flow transition: a parallel loop's
// iterations; at most maxFlowPush < 1<<10). It is the node's own: Job.Seq
// is never sent to another node or a client, and a state rebuilt from the
// log orders jobs the same way as one that applied it as it came (entries
// written before jobSeq had seqs without the low ten bits: smaller than
// every later one, as their order wants).
func (a *applier) jobSeq() uint64 {
	s := a.seq()<<10 | a.pushes
	a.pushes++
	return s
}

func (a *applier) bucket(name []byte) *bolt.Bucket { return a.tx.Bucket(name) }

func (a *applier) emit(e vane.Event) { a.events = append(a.events, e) }

// Apply applies one entry; raft calls ApplyBatch instead, this is for completeness.
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies committed entries in one bbolt transaction. Entries at or
// below the stored applied index were applied before a restart and are skipped,
// so a replayed log never applies twice. A commit that fails for want of disk
// space is retried until space returns (the disk guard keeps vane's own
// writes from filling it; something else may); any other failing commit means
// the state file is unusable (an I/O error), and the node stops rather than
// diverge.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil { // closed after a raft shutdown that timed out
		return closedResults(len(logs))
	}
	resp, a, last, err := f.commitRetrying(logs)
	if err != nil {
		if errors.Is(err, vane.ErrUnavailable) {
			// The store closes while the disk is still full: these entries
			// are in the log and apply at the next start (the state file's
			// applied index stays before them).
			return closedResults(len(logs))
		}
		panic(fmt.Sprintf("raftstore: cannot commit applied entries up to %d: %v", last, err))
	}
	f.applied.Store(last)
	f.clock.Store(a.clock)
	f.queued.Add(a.queued)
	if a.secret != nil {
		s := a.secret
		f.secret.Store(&s)
	}
	f.appliedMu.Lock()
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	f.appliedMu.Unlock()
	f.publish(a.events)
	f.wake(a.completed)
	return resp
}

// closedResults answers n entries with "state is closed".
func closedResults(n int) []any {
	resp := make([]any, n)
	for i := range resp {
		resp[i] = entryResult{err: fmt.Errorf("state is closed: %w", vane.ErrUnavailable)}
	}
	return resp
}

// commitRetrying applies logs in one write transaction and commits it; when
// the commit fails for want of space it applies them again in a new
// transaction once a second, until one commits or the store closes
// (ErrUnavailable). Applying is deterministic, so a retry computes the same
// outcomes.
func (f *fsm) commitRetrying(logs []*raft.Log) (resp []any, a *applier, last uint64, err error) {
	for attempt := 0; ; attempt++ {
		resp = make([]any, len(logs))
		a = &applier{clock: f.clock.Load()}
		last = f.applied.Load()
		start := last
		err = f.db.Update(func(tx *bolt.Tx) error {
			a.tx = tx
			for i, l := range logs {
				if l.Index <= start {
					resp[i] = entryResult{err: fmt.Errorf("entry %d was applied before: %w", l.Index, vane.ErrIndeterminate)}
					continue
				}
				if l.Type == raft.LogCommand {
					a.index = l.Index
					resp[i] = a.applyEntry(l.Data)
				}
				last = l.Index
			}
			if last == start {
				return nil
			}
			if err := tx.Bucket(bucketMeta).Put(metaClock, u64(uint64(a.clock))); err != nil {
				return err
			}
			return tx.Bucket(bucketMeta).Put(metaApplied, u64(last))
		})
		if err == nil || !isNoSpace(err) {
			if attempt > 0 && err == nil {
				f.log.Info("disk space is back: applied entries committed", "index", last)
			}
			return resp, a, last, err
		}
		if attempt == 0 {
			f.log.Error("the disk is full: cannot commit applied entries; retrying every second until space is freed", "index", last, "error", err)
		}
		select {
		case <-f.stop:
			return nil, nil, last, fmt.Errorf("store closing with entries up to %d not committed (disk full): %w", last, vane.ErrUnavailable)
		case <-time.After(time.Second):
		}
	}
}

func (a *applier) applyEntry(data []byte) entryResult {
	cmds, errs, err := decodeEntry(data)
	if err != nil {
		return entryResult{err: err}
	}
	res := make([]cmdResult, len(cmds))
	for i, c := range cmds {
		if errs[i] != nil {
			res[i].err = errs[i]
			continue
		}
		a.pos, a.audits, a.pushes = i, 0, 0
		b := c.stamp()
		if at := b.At.UnixNano(); at < a.clock && a.clock-at <= int64(maxClockRegress) {
			b.At = time.Unix(0, a.clock).UTC()
		} else {
			a.clock = at
		}
		res[i].out, res[i].err = c.apply(a)
	}
	return entryResult{results: res}
}

// waitApplied returns once index idx has been applied locally.
func (f *fsm) waitApplied(ctx context.Context, idx uint64) error {
	for {
		f.appliedMu.Lock()
		ch := f.appliedCh
		f.appliedMu.Unlock()
		if f.applied.Load() >= idx {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("cannot wait for index %d: %w", idx, ctx.Err())
		}
	}
}

func (f *fsm) subscribe() (<-chan vane.Event, func()) {
	ch := make(chan vane.Event, 1024)
	f.subMu.Lock()
	id := f.nextSub
	f.nextSub++
	f.subs[id] = ch
	f.subMu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			f.subMu.Lock()
			delete(f.subs, id)
			f.subMu.Unlock()
		})
	}
}

// publish delivers events without blocking: a full subscriber misses them.
func (f *fsm) publish(events []vane.Event) {
	if len(events) == 0 {
		return
	}
	f.subMu.Lock()
	defer f.subMu.Unlock()
	for _, ch := range f.subs {
		for _, e := range events {
			select {
			case ch <- e:
			default:
			}
		}
	}
}

// addWaiter registers interest in the completion of ws/id.
func (f *fsm) addWaiter(ws, id string) (chan struct{}, func()) {
	k := string(key(ws, id))
	ch := make(chan struct{})
	f.waitMu.Lock()
	f.waiters[k] = append(f.waiters[k], ch)
	f.waitMu.Unlock()
	return ch, func() {
		f.waitMu.Lock()
		defer f.waitMu.Unlock()
		list := f.waiters[k]
		for i, c := range list {
			if c == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(f.waiters, k)
		} else {
			f.waiters[k] = list
		}
	}
}

func (f *fsm) wake(completed []string) {
	if len(completed) == 0 {
		return
	}
	f.waitMu.Lock()
	defer f.waitMu.Unlock()
	for _, k := range completed {
		for _, ch := range f.waiters[k] {
			close(ch)
		}
		delete(f.waiters, k)
	}
}

// wakeAll wakes every waiter (after a restore); WaitJob re-reads and waits again.
func (f *fsm) wakeAll() {
	f.waitMu.Lock()
	defer f.waitMu.Unlock()
	for k, list := range f.waiters {
		for _, ch := range list {
			close(ch)
		}
		delete(f.waiters, k)
	}
}
