package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// A guest's TCP connections (vane.net_*; see CallModule). Wasm has no
// sockets: the host dials through Call.Dial (the job's egress policy) and
// keeps the connections in a table of the call, which the guest names by
// handle. Reads wait at most a second, so that a guest whose runtime
// schedules goroutines cooperatively (Go's) can let the others run between
// polls; writes block until done or the call's context ends.

const (
	// maxNetConns bounds a call's open connections.
	maxNetConns = 256
	// maxNetWait bounds how long one net_read waits for data.
	maxNetWait = time.Second
	// maxNetChunk bounds one read or write's copy through the host.
	maxNetChunk = 64 << 10
	// maxAddress bounds net_dial's address.
	maxAddress = 1024
)

// netState is a call's connections and last failure.
type netState struct {
	mu      sync.Mutex
	conns   map[int32]net.Conn
	next    int32
	lastErr string
	closed  bool
	buf     []byte // net_read's, reused: a guest makes one host call at a time, and only those touch it
}

func (n *netState) fail(err error) {
	n.mu.Lock()
	n.lastErr = err.Error()
	n.mu.Unlock()
}

func (n *netState) conn(h int32) (net.Conn, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.conns[h]
	return c, ok
}

// CloseNet closes the call's connections; later dials fail. Executors call
// it when the guest's call returns.
func (c *Call) CloseNet() {
	c.net.mu.Lock()
	conns := c.net.conns
	c.net.conns, c.net.closed = nil, true
	c.net.mu.Unlock()
	for _, conn := range conns {
		_ = conn.Close()
	}
}

// stopIfDone stops the guest's call when its context has ended (a cancel,
// the job's timeout): a guest that polls net_read in a loop would otherwise
// run until the loop instrumentation's next check, thousands of polls later.
func stopIfDone(ctx context.Context) {
	if ctx.Err() != nil {
		panic(ctxExit(ctx))
	}
}

// errNoNetwork is net_dial's failure for a call without Dial.
var errNoNetwork = errors.New("this job has no network (no egress session was given to it)")

func hostNetDial(ctx context.Context, mod api.Module, stack []uint64) {
	c := callFrom(ctx)
	ptr, n := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	stack[0] = api.EncodeI32(-1)
	if c == nil {
		return
	}
	stopIfDone(ctx)
	if n > maxAddress {
		c.net.fail(fmt.Errorf("the address is %d bytes, more than %d", n, maxAddress))
		return
	}
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		panic(fmt.Errorf("vane.net_dial: [%d, %d) is out of memory bounds", ptr, uint64(ptr)+uint64(n)))
	}
	address := string(b)
	if c.Dial == nil {
		c.net.fail(fmt.Errorf("dial tcp %s: %w", address, errNoNetwork))
		return
	}
	c.net.mu.Lock()
	full, closed := len(c.net.conns) >= maxNetConns, c.net.closed
	c.net.mu.Unlock()
	switch {
	case closed:
		c.net.fail(fmt.Errorf("dial tcp %s: the call has ended", address))
		return
	case full:
		c.net.fail(fmt.Errorf("dial tcp %s: the job has %d connections open, the most it may", address, maxNetConns))
		return
	}
	conn, err := c.Dial(ctx, address)
	if err != nil {
		stopIfDone(ctx)
		c.net.fail(err)
		return
	}
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	if c.net.closed || len(c.net.conns) >= maxNetConns {
		_ = conn.Close()
		c.net.lastErr = fmt.Sprintf("dial tcp %s: the call has ended or has too many connections", address)
		return
	}
	if c.net.conns == nil {
		c.net.conns = make(map[int32]net.Conn)
	}
	c.net.next++
	h := c.net.next
	c.net.conns[h] = conn
	stack[0] = api.EncodeI32(h)
}

// hostConn is the connection of handle h for a read or write (op) of the
// call: it stops the call if its context has ended, and records a failure
// for a call without the handle.
func (c *Call) hostConn(ctx context.Context, h int32, op string) (net.Conn, bool) {
	if c == nil {
		return nil, false
	}
	stopIfDone(ctx)
	conn, ok := c.net.conn(h)
	if !ok {
		c.net.fail(fmt.Errorf("%s: %w", op, net.ErrClosed))
	}
	return conn, ok
}

// netWait is how long one read or write waits: the guest's wait_ms, within
// [1 ms, maxNetWait] and the call's deadline.
func netWait(ctx context.Context, waitMs uint32) time.Duration {
	wait := max(min(time.Duration(waitMs)*time.Millisecond, maxNetWait), time.Millisecond)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		wait = max(time.Until(dl), time.Millisecond)
	}
	return wait
}

func hostNetRead(ctx context.Context, mod api.Module, stack []uint64) {
	c := callFrom(ctx)
	h, ptr, capacity, waitMs := api.DecodeI32(stack[0]), api.DecodeU32(stack[1]), api.DecodeU32(stack[2]), api.DecodeU32(stack[3])
	stack[0] = api.EncodeI32(-1)
	conn, ok := c.hostConn(ctx, h, "read")
	if !ok {
		return
	}
	if capacity == 0 {
		stack[0] = api.EncodeI32(-2)
		return
	}
	wait := netWait(ctx, waitMs)
	if c.net.buf == nil {
		c.net.buf = make([]byte, maxNetChunk)
	}
	buf := c.net.buf[:min(int(capacity), maxNetChunk)]
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	nr, err := conn.Read(buf)
	stop()
	if nr == 0 {
		stopIfDone(ctx)
	}
	if nr > 0 {
		if !mod.Memory().Write(ptr, buf[:nr]) {
			panic(fmt.Errorf("vane.net_read: [%d, %d) is out of memory bounds", ptr, uint64(ptr)+uint64(nr)))
		}
		stack[0] = api.EncodeI32(int32(nr))
		return
	}
	switch {
	case errors.Is(err, io.EOF):
		stack[0] = 0
	case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil:
		stack[0] = api.EncodeI32(-2)
	case err != nil:
		c.net.fail(err)
	default:
		stack[0] = api.EncodeI32(-2)
	}
}

func hostNetWrite(ctx context.Context, mod api.Module, stack []uint64) {
	c := callFrom(ctx)
	h, ptr, n, waitMs := api.DecodeI32(stack[0]), api.DecodeU32(stack[1]), api.DecodeU32(stack[2]), api.DecodeU32(stack[3])
	stack[0] = api.EncodeI32(-1)
	conn, ok := c.hostConn(ctx, h, "write")
	if !ok {
		return
	}
	if n > maxNetChunk {
		n = maxNetChunk // the guest writes the rest in its next call
	}
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		panic(fmt.Errorf("vane.net_write: [%d, %d) is out of memory bounds", ptr, uint64(ptr)+uint64(n)))
	}
	// Like a read, a write waits at most wait_ms (a peer that stops
	// reading must not freeze the guest's other goroutines, nor hold the
	// job past its end: the wait also ends with the call's context).
	_ = conn.SetWriteDeadline(time.Now().Add(netWait(ctx, waitMs)))
	stop := context.AfterFunc(ctx, func() { _ = conn.SetWriteDeadline(time.Unix(1, 0)) })
	// b is a view of the guest's memory, valid until it grows: the guest
	// is blocked in this call meanwhile.
	nw, err := conn.Write(b)
	stop()
	switch {
	case nw > 0:
		stack[0] = api.EncodeI32(int32(nw))
	case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil:
		stack[0] = api.EncodeI32(-2)
	case err != nil:
		stopIfDone(ctx)
		c.net.fail(err)
	default:
		stack[0] = 0
	}
}

func hostNetClose(ctx context.Context, _ api.Module, stack []uint64) {
	c := callFrom(ctx)
	h := api.DecodeI32(stack[0])
	stack[0] = api.EncodeI32(-1)
	if c == nil {
		return
	}
	c.net.mu.Lock()
	conn, ok := c.net.conns[h]
	delete(c.net.conns, h)
	c.net.mu.Unlock()
	if ok {
		_ = conn.Close()
		stack[0] = 0
	}
}

func hostNetError(ctx context.Context, mod api.Module, stack []uint64) {
	c := callFrom(ctx)
	if c == nil {
		stack[0] = 0
		return
	}
	c.net.mu.Lock()
	msg := c.net.lastErr
	c.net.mu.Unlock()
	copyOut(mod, stack, []byte(msg), "vane.net_error")
}

func hostNetRoots(ctx context.Context, mod api.Module, stack []uint64) {
	c := callFrom(ctx)
	if c == nil {
		stack[0] = 0
		return
	}
	copyOut(mod, stack, c.Roots, "vane.net_roots")
}

// copyOut answers a (ptr, cap) -> length call: it copies up to cap bytes
// of b to ptr (none when ptr is 0) and returns b's length.
func copyOut(mod api.Module, stack []uint64, b []byte, name string) {
	ptr, capacity := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	if ptr != 0 {
		n := min(int(capacity), len(b))
		if !mod.Memory().Write(ptr, b[:n]) {
			panic(fmt.Errorf("%s: [%d, %d) is out of memory bounds", name, ptr, uint64(ptr)+uint64(n)))
		}
	}
	stack[0] = api.EncodeU32(uint32(len(b)))
}
