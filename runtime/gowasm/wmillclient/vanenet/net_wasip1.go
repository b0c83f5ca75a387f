//go:build wasip1

// Package vanenet is vane's TCP dialer for Go jobs (vane's, not part of
// Windmill's Go client, in whose module vane ships it). Wasm has no
// sockets: vane dials for the job, under its egress policy, and the job
// reads and writes through the host (the "vane" host module's net_*
// functions). net/http's default transport uses it without the script
// doing anything; a database driver that takes a dial function can be
// given DialContext. It is a package of its own so that scripts using only
// the client do not link package net.
package vanenet

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"time"
	"unsafe"
)

//go:wasmimport vane net_dial
func vaneNetDial(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport vane net_read
func vaneNetRead(h int32, ptr unsafe.Pointer, n uint32, waitMs uint32) int32

//go:wasmimport vane net_write
func vaneNetWrite(h int32, ptr unsafe.Pointer, n uint32, waitMs uint32) int32

//go:wasmimport vane net_close
func vaneNetClose(h int32) int32

//go:wasmimport vane net_error
func vaneNetError(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport vane net_roots
func vaneNetRoots(ptr unsafe.Pointer, n uint32) uint32

// DialContext connects to address ("host:port", network "tcp", "tcp4" or
// "tcp6") through vane: the host resolves the name and dials each address
// the job's egress policy admits. A refusal's error names the destination,
// the rule and the flag that would allow it.
func DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	b := []byte(address)
	h := vaneNetDial(unsafe.Pointer(unsafe.SliceData(b)), uint32(len(b)))
	if h < 0 {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New(vaneLastNetError())}
	}
	return &vaneConn{h: h, remote: vaneAddr(address)}, nil
}

// Dial is DialContext without a context.
func Dial(network, address string) (net.Conn, error) {
	return DialContext(context.Background(), network, address)
}

// RootCAs returns the PEM of the CAs the job trusts: the machine's and the
// operator's (--ca-file).
func RootCAs() []byte {
	n := vaneNetRoots(nil, 0)
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	vaneNetRoots(unsafe.Pointer(unsafe.SliceData(b)), n)
	return b
}

func vaneLastNetError() string {
	n := vaneNetError(nil, 0)
	if n == 0 {
		return "network error"
	}
	b := make([]byte, n)
	vaneNetError(unsafe.Pointer(unsafe.SliceData(b)), n)
	return string(b)
}

type vaneAddr string

func (a vaneAddr) Network() string { return "tcp" }
func (a vaneAddr) String() string  { return string(a) }

// vaneConn is a connection the host holds for the job.
type vaneConn struct {
	h        int32
	closed   bool
	remote   vaneAddr
	rdl, wdl time.Time
}

// timeoutError is what a read or write past its deadline returns, as net's.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
func (timeoutError) Unwrap() error   { return os.ErrDeadlineExceeded }

func (c *vaneConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Addr: c.remote, Err: err}
}

// Read waits for data in short host calls, letting the job's other
// goroutines run in between (the guest runs one at a time: net/http's
// reader and writer goroutines share it).
func (c *vaneConn) Read(p []byte) (int, error) {
	if c.closed {
		return 0, c.opError("read", net.ErrClosed)
	}
	if len(p) == 0 {
		return 0, nil
	}
	wait := uint32(1)
	for {
		if !c.rdl.IsZero() {
			left := time.Until(c.rdl)
			if left <= 0 {
				return 0, c.opError("read", timeoutError{})
			}
			wait = min(wait, uint32(left/time.Millisecond)+1)
		}
		n := vaneNetRead(c.h, unsafe.Pointer(unsafe.SliceData(p)), uint32(len(p)), wait)
		switch {
		case n > 0:
			return int(n), nil
		case n == 0:
			return 0, io.EOF
		case n == -2:
			runtime.Gosched()
			wait = min(wait*2, 50) // nothing came: poll less often
		default:
			return 0, c.opError("read", errors.New(vaneLastNetError()))
		}
	}
}

func (c *vaneConn) Write(p []byte) (int, error) {
	if c.closed {
		return 0, c.opError("write", net.ErrClosed)
	}
	written, wait := 0, uint32(1)
	for written < len(p) {
		if !c.wdl.IsZero() {
			left := time.Until(c.wdl)
			if left <= 0 {
				return written, c.opError("write", timeoutError{})
			}
			wait = min(wait, uint32(left/time.Millisecond)+1)
		}
		rest := p[written:]
		n := vaneNetWrite(c.h, unsafe.Pointer(unsafe.SliceData(rest)), uint32(len(rest)), wait)
		switch {
		case n > 0:
			written += int(n)
			wait = 1
		case n == -2:
			runtime.Gosched() // the peer is not reading yet: let the rest of the job run
			wait = min(wait*2, 50)
		default:
			return written, c.opError("write", errors.New(vaneLastNetError()))
		}
	}
	return written, nil
}

func (c *vaneConn) Close() error {
	if c.closed {
		return c.opError("close", net.ErrClosed)
	}
	c.closed = true
	vaneNetClose(c.h)
	return nil
}

func (c *vaneConn) LocalAddr() net.Addr  { return vaneAddr("0.0.0.0:0") }
func (c *vaneConn) RemoteAddr() net.Addr { return c.remote }

func (c *vaneConn) SetDeadline(t time.Time) error {
	c.rdl, c.wdl = t, t
	return nil
}

func (c *vaneConn) SetReadDeadline(t time.Time) error  { c.rdl = t; return nil }
func (c *vaneConn) SetWriteDeadline(t time.Time) error { c.wdl = t; return nil }
