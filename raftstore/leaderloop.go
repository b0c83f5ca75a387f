package raftstore

import (
	"context"
	"sync"
)

// leaderLoop is a background duty of the leader (the lease reaper, the
// retention loop): watchLeadership starts it when this node gains leadership
// and stops it when it loses it, so exactly one node proposes what it
// proposes; a stale proposal from a deposed leader fails with ErrNotLeader
// and changes nothing.
type leaderLoop struct {
	// mu guards cancel and done: the running loop, if any.
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs run in its own goroutine unless it is running already.
func (l *leaderLoop) start(run func(ctx context.Context)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	l.cancel, l.done = cancel, done
	go func() {
		defer close(done)
		run(ctx)
	}()
}

// stop cancels the loop and waits for it to return.
func (l *leaderLoop) stop() {
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.cancel, l.done = nil, nil
	l.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func (l *leaderLoop) running() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cancel != nil
}
