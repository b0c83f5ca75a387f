package deno

import "sync"

// flightGroup runs one call per key at a time; concurrent callers of the
// same key wait for it and share its result (a tiny singleflight).
type flightGroup struct {
	mu    sync.Mutex // guards calls
	calls map[string]*flightCall
}

// flightCall is one call in flight.
type flightCall struct {
	done chan struct{}
	val  any
	err  error
}

// Do runs fn for key unless a call for key is in flight, in which case it
// waits for that call and returns its result. shared reports the latter.
func (g *flightGroup) Do(key string, fn func() (any, error)) (val any, err error, shared bool) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*flightCall{}
	}
	if c, ok := g.calls[key]; ok {
		g.mu.Unlock()
		<-c.done
		return c.val, c.err, true
	}
	c := &flightCall{done: make(chan struct{})}
	g.calls[key] = c
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.calls, key)
		g.mu.Unlock()
		close(c.done)
	}()
	c.val, c.err = fn()
	return c.val, c.err, false
}
