package python

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	jobrt "vane/runtime"
	"vane/runtime/netfile"
)

// A worker process has no egress of its own: the job's egress session (its
// policy, budgets and refusal reports) lives in the parent. A job's connect
// in a worker sends a dial frame (frameDial: "<timeout_ms> <host:port>") to
// the parent, which dials through the job's egress and answers on the jobs
// socket: "+<peer address>" with one descriptor, a unix stream socket that
// the parent relays to and from the connection, or a netfile kind byte and
// the failure. The relay counts through the egress connection, so the
// job's byte budget holds; the worker's TLS runs over the relayed socket.
//
// On the relayed socket bytes travel in frames (a type byte, a 4-byte
// big-endian length, the payload), so that what a byte stream cannot say
// reaches the other side: from the parent, 'd' data and 'x' the
// connection's failure (a kind byte and the message: a peer's reset or a
// budget's cut is the job's error, not a clean end of stream); from the
// worker, 'd' data and 'w' a half-close (shutdown(SHUT_WR)). The end of
// the worker's stream is its close of the socket, and the parent then
// closes the connection at once (its egress slot is free again).
const (
	relayData      = 'd'
	relayFailure   = 'x'
	relayHalfClose = 'w'

	relayHeader   = 5
	maxRelayFrame = 64 << 10
)

// maxDialAnswer bounds a dial answer on the jobs socket.
const maxDialAnswer = 8 << 10

// relays are the relayed connections of one job in a worker: closed, and
// their copies waited for, when the job ends.
type relays struct {
	mu     sync.Mutex // guards conns and closed
	conns  []io.Closer
	closed bool
	wg     sync.WaitGroup
}

// add records the connections of one relay, whose two copies it counts
// for close; false (and c closed) once the job has ended.
func (r *relays) add(c ...io.Closer) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		for _, x := range c {
			_ = x.Close()
		}
		return false
	}
	r.conns = append(r.conns, c...)
	r.wg.Add(2) // relay's copies
	return true
}

// close closes every relayed connection and waits for the copies.
func (r *relays) close() {
	r.mu.Lock()
	conns := r.conns
	r.conns, r.closed = nil, true
	r.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	r.wg.Wait()
}

// dialForWorker answers a worker's dial frame: it dials through eg and
// passes the worker its end of a relay, or the failure. Only an error
// writing to the jobs socket is returned (the worker is then unusable).
func dialForWorker(ctx context.Context, jobs *os.File, eg jobrt.Egress, payload []byte, rs *relays) error {
	answer := func(kind byte, msg string) error {
		b := append([]byte{kind}, msg...)
		if len(b) > maxDialAnswer {
			b = b[:maxDialAnswer]
		}
		return unix.Sendmsg(int(jobs.Fd()), b, nil, nil, 0)
	}
	msText, address, ok := strings.Cut(string(payload), " ")
	ms, err := strconv.ParseInt(msText, 10, 64)
	if !ok || err != nil {
		return answer(netfile.KindOther, fmt.Sprintf("vane: malformed dial request %q", payload))
	}
	if ms >= 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, max(time.Duration(ms)*time.Millisecond, time.Millisecond))
		defer cancel()
	}
	remote, err := jobrt.DialEgress(ctx, eg, address)
	if err != nil {
		return answer(netfile.ErrorKind(err), err.Error())
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		_ = remote.Close()
		return answer(netfile.KindOther, "vane: cannot relay the connection: "+err.Error())
	}
	theirs := os.NewFile(uintptr(pair[1]), "relay (worker)")
	defer theirs.Close()
	mineFile := os.NewFile(uintptr(pair[0]), "relay")
	mine, err := net.FileConn(mineFile)
	_ = mineFile.Close() // FileConn holds a copy
	if err != nil {
		_ = remote.Close()
		return answer(netfile.KindOther, "vane: cannot relay the connection: "+err.Error())
	}
	if !rs.add(remote, mine) {
		return answer(netfile.KindOther, fmt.Sprintf("dial tcp %s: the job has ended", address))
	}
	relay(rs, remote, mine)
	b := append([]byte{'+'}, remote.RemoteAddr().String()...)
	return unix.Sendmsg(int(jobs.Fd()), b, unix.UnixRights(int(theirs.Fd())), nil, 0)
}

// relay passes remote's bytes to the worker's end of mine, and the
// worker's frames to remote, until the worker closes its end (or the job
// ends: rs.close); it then closes both.
func relay(rs *relays, remote, mine net.Conn) {
	go func() { // remote -> worker
		defer rs.wg.Done()
		buf := make([]byte, relayHeader+maxRelayFrame)
		for {
			n, err := remote.Read(buf[relayHeader:])
			if n > 0 {
				if werr := writeRelayFrame(mine, buf, relayData, n); werr != nil {
					return
				}
			}
			if err == nil {
				continue
			}
			if !errors.Is(err, io.EOF) {
				msg := append([]byte{netfile.ErrorKind(err)}, err.Error()...)
				n := copy(buf[relayHeader:], msg[:min(len(msg), maxDialAnswer)])
				_ = writeRelayFrame(mine, buf, relayFailure, n)
			}
			if cw, ok := mine.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
			return
		}
	}()
	go func() { // worker -> remote
		defer rs.wg.Done()
		defer func() { _ = remote.Close(); _ = mine.Close() }()
		var hdr [relayHeader]byte
		for {
			if _, err := io.ReadFull(mine, hdr[:]); err != nil {
				return // the worker closed its end, or the job ended
			}
			n := int64(binary.BigEndian.Uint32(hdr[1:]))
			switch {
			case hdr[0] == relayData && n <= maxRelayFrame:
				if _, err := io.CopyN(remote, mine, n); err != nil {
					return
				}
			case hdr[0] == relayHalfClose && n == 0:
				if cw, ok := remote.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
				}
			default:
				return // not a frame of the worker's side: end the connection
			}
		}
	}()
}

// writeRelayFrame writes buf[relayHeader:relayHeader+n] as one frame of
// type typ, its header written into buf's first bytes.
func writeRelayFrame(w io.Writer, buf []byte, typ byte, n int) error {
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:relayHeader], uint32(n))
	_, err := w.Write(buf[:relayHeader+n])
	return err
}

// workerDialer is a worker's netfile.Dialer: it asks the parent (send a
// dial frame, read the answer on jobs). A worker runs one job at a time,
// and its guest one command at a time, so one dial is in flight at most.
func workerDialer(send func(byte, []byte) error, jobs *os.File) netfile.Dialer {
	return func(ctx context.Context, address string) (net.Conn, error) {
		ms := int64(-1)
		if dl, ok := ctx.Deadline(); ok {
			ms = max(time.Until(dl).Milliseconds(), 1)
		}
		if err := send(frameDial, []byte(strconv.FormatInt(ms, 10)+" "+address)); err != nil {
			return nil, fmt.Errorf("dial tcp %s: cannot ask vane: %w", address, err)
		}
		buf := make([]byte, maxDialAnswer)
		oob := make([]byte, unix.CmsgSpace(4))
		n, oobn, _, _, err := unix.Recvmsg(int(jobs.Fd()), buf, oob, recvCloexec)
		if err != nil {
			return nil, fmt.Errorf("dial tcp %s: cannot read vane's answer: %w", address, err)
		}
		var fds []int
		if oobn > 0 {
			msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err == nil && len(msgs) == 1 {
				fds, _ = unix.ParseUnixRights(&msgs[0])
			}
		}
		if n == 0 || buf[0] != '+' || len(fds) != 1 {
			for _, fd := range fds {
				unix.Close(fd)
			}
			if n == 0 {
				return nil, fmt.Errorf("dial tcp %s: vane gave no answer", address)
			}
			if buf[0] == '+' {
				return nil, fmt.Errorf("dial tcp %s: vane's answer carried %d descriptors", address, len(fds))
			}
			return nil, &netfile.Error{Kind: buf[0], Msg: string(buf[1:n])}
		}
		f := os.NewFile(uintptr(fds[0]), "relay")
		conn, err := net.FileConn(f)
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("dial tcp %s: %w", address, err)
		}
		uc, ok := conn.(*net.UnixConn)
		if !ok {
			_ = conn.Close()
			return nil, errors.New("dial tcp " + address + ": vane passed a socket that is not a unix one")
		}
		return &relayedConn{UnixConn: uc, remote: peerAddr(buf[1:n]), in: bufio.NewReaderSize(uc, 32<<10)}, nil
	}
}

// relayedConn is a worker's end of a relay, in its frames: its RemoteAddr
// is the peer's. Only the guest's thread reads and writes it.
type relayedConn struct {
	*net.UnixConn
	remote net.Addr
	in     *bufio.Reader
	left   int   // bytes of the current data frame not read yet
	failed error // the connection's failure, once the parent sent it
	out    []byte
}

func (c *relayedConn) RemoteAddr() net.Addr { return c.remote }

// Read implements net.Conn. A deadline that passes mid-header leaves the
// header buffered for the next Read.
func (c *relayedConn) Read(p []byte) (int, error) {
	for c.left == 0 {
		if c.failed != nil {
			return 0, c.failed
		}
		hdr, err := c.in.Peek(relayHeader)
		if err != nil {
			if errors.Is(err, io.EOF) && len(hdr) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		typ, n := hdr[0], int(binary.BigEndian.Uint32(hdr[1:]))
		switch {
		case typ == relayData && n <= maxRelayFrame:
			_, _ = c.in.Discard(relayHeader)
			c.left = n
		case typ == relayFailure && n > 0 && n <= maxDialAnswer:
			msg, err := c.in.Peek(relayHeader + n)
			if err != nil {
				return 0, err
			}
			c.failed = &netfile.Error{Kind: msg[relayHeader], Msg: string(msg[relayHeader+1:])}
			_, _ = c.in.Discard(relayHeader + n)
		default:
			c.failed = fmt.Errorf("vane sent a relay frame of type %q and %d bytes", typ, n)
		}
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.in.Read(p)
	c.left -= n
	if n > 0 {
		err = nil
	}
	return n, err
}

// Write implements net.Conn, in data frames.
func (c *relayedConn) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), maxRelayFrame)]
		c.out = append(c.out[:0], relayData, 0, 0, 0, 0)
		binary.BigEndian.PutUint32(c.out[1:relayHeader], uint32(len(chunk)))
		c.out = append(c.out, chunk...)
		if n, err := c.UnixConn.Write(c.out); err != nil {
			if n > 0 {
				// Part of a frame went out (a send's timeout passed): the
				// parent would take what follows for its rest, so the
				// connection cannot go on. In process it could; a job
				// that retries a timed-out send here gets an error.
				_ = c.UnixConn.Close()
			}
			return written, err
		}
		written += len(chunk)
		p = p[len(chunk):]
	}
	return written, nil
}

// CloseWrite half-closes the connection (the parent passes it on).
func (c *relayedConn) CloseWrite() error {
	_, err := c.UnixConn.Write([]byte{relayHalfClose, 0, 0, 0, 0})
	return err
}

// peerAddr is a TCP peer's address as the parent wrote it.
type peerAddr string

func (a peerAddr) Network() string { return "tcp" }
func (a peerAddr) String() string  { return string(a) }
