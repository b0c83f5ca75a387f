package python

import (
	"context"
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

// add records c; false (and c closed) once the job has ended.
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

// relay copies between a and b, each way until its end of file, which it
// passes on as a half-close; once both ways ended it closes both.
func relay(rs *relays, a, b net.Conn) {
	var both sync.WaitGroup
	both.Add(2)
	oneWay := func(dst, src net.Conn) {
		defer both.Done()
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	rs.wg.Add(3)
	go func() { defer rs.wg.Done(); oneWay(a, b) }()
	go func() { defer rs.wg.Done(); oneWay(b, a) }()
	go func() {
		defer rs.wg.Done()
		both.Wait()
		_ = a.Close()
		_ = b.Close()
	}()
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
		return &relayedConn{UnixConn: uc, remote: peerAddr(buf[1:n])}, nil
	}
}

// relayedConn is a worker's end of a relay: its RemoteAddr is the peer's.
type relayedConn struct {
	*net.UnixConn
	remote net.Addr
}

func (c *relayedConn) RemoteAddr() net.Addr { return c.remote }

// peerAddr is a TCP peer's address as the parent wrote it.
type peerAddr string

func (a peerAddr) Network() string { return "tcp" }
func (a peerAddr) String() string  { return string(a) }
