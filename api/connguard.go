package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// connGuard wraps the API's listener so that hostile load never stops the
// server:
//   - an accept error that says the process or the system is out of
//     descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) or that a
//     connection died in the backlog (ECONNABORTED) is retried with a
//     backoff (5 ms doubling to 1 s) instead of ending Serve, as fasthttp
//     would: it treats every accept error but a timeout as final;
//   - open connections are capped (MaxConns) below the descriptor limit, and
//     per client address (MaxConnsPerIP), so that one address cannot take
//     every slot; a connection over a cap is answered 503 and closed at once,
//     holding its descriptor for microseconds.
//
// Slowloris (a header trickled byte by byte) is fasthttp's ReadTimeout, set
// to Config.HeaderTimeout (see New). Every refusal is counted in /metrics.
type connGuard struct {
	net.Listener
	maxConns, maxPerIP int
	log                *slog.Logger

	refusedTotal *atomic.Uint64
	refusedPerIP *atomic.Uint64
	acceptErrors *atomic.Uint64

	// mu guards open and perIP.
	mu    sync.Mutex
	open  int
	perIP map[netip.Addr]int

	closed    chan struct{}
	closeOnce sync.Once
	lastLog   atomic.Int64 // unix nanos of the last refusal or accept-error log line
}

// newConnGuard wraps ln; maxConns or maxPerIP 0 means no such cap.
func newConnGuard(ln net.Listener, maxConns, maxPerIP int, m *Metrics, log *slog.Logger) *connGuard {
	g := &connGuard{Listener: ln, maxConns: maxConns, maxPerIP: maxPerIP, log: log,
		perIP: map[netip.Addr]int{}, closed: make(chan struct{}),
		refusedTotal: m.Counter("vane_http_connections_refused_total", "Connections refused at accept, by cap.", `reason="max_connections"`),
		refusedPerIP: m.Counter("vane_http_connections_refused_total", "Connections refused at accept, by cap.", `reason="max_connections_per_ip"`),
		acceptErrors: m.Counter("vane_http_accept_errors_total", "Accept errors retried with backoff (out of descriptors or memory).", ""),
	}
	m.GaugeFunc("vane_http_connections_open", "HTTP connections open now.", func() float64 {
		g.mu.Lock()
		defer g.mu.Unlock()
		return float64(g.open)
	})
	return g
}

// tooMany is the whole answer to a connection over a cap.
const tooMany = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n%s"

// Accept returns the next connection within the caps. It returns an error
// only when the listener is closed or fails for good.
func (g *connGuard) Accept() (net.Conn, error) {
	backoff := time.Duration(0)
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			if !retryableAccept(err) {
				return nil, err
			}
			g.acceptErrors.Add(1)
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			g.logRateLimited("http: accept failed, retrying", "error", err, "retry_in", backoff)
			select {
			case <-g.closed:
				return nil, net.ErrClosed
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		ip := remoteIP(c)
		if reason := g.admit(ip); reason != "" {
			msg := "too many connections: " + reason + "\n"
			_ = c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			_, _ = fmt.Fprintf(c, tooMany, len(msg), msg)
			_ = c.Close()
			g.logRateLimited("http: connection refused", "remote", ip, "reason", reason)
			continue
		}
		return &guardedConn{Conn: c, g: g, ip: ip}, nil
	}
}

// admit counts a new connection from ip in, or says which cap refuses it.
func (g *connGuard) admit(ip netip.Addr) (refused string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.maxConns > 0 && g.open >= g.maxConns {
		g.refusedTotal.Add(1)
		return fmt.Sprintf("the server holds its maximum of %d", g.maxConns)
	}
	if g.maxPerIP > 0 && g.perIP[ip] >= g.maxPerIP {
		g.refusedPerIP.Add(1)
		return fmt.Sprintf("your address holds its maximum of %d", g.maxPerIP)
	}
	g.open++
	g.perIP[ip]++
	return ""
}

// release counts a closed connection out.
func (g *connGuard) release(ip netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open--
	if n := g.perIP[ip] - 1; n > 0 {
		g.perIP[ip] = n
	} else {
		delete(g.perIP, ip)
	}
}

// Close closes the listener and ends a pending backoff.
func (g *connGuard) Close() error {
	g.closeOnce.Do(func() { close(g.closed) })
	return g.Listener.Close()
}

// logRateLimited logs at most one line a second: a flood must not become a
// flood of log lines.
func (g *connGuard) logRateLimited(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := g.lastLog.Load()
	if now-last < int64(time.Second) || !g.lastLog.CompareAndSwap(last, now) {
		return
	}
	g.log.Warn(msg, args...)
}

// retryableAccept reports whether an accept error is a shortage that passes
// (descriptors, memory) or a connection that died in the backlog, rather
// than a closed or broken listener.
func retryableAccept(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR, syscall.EPROTO:
		return true
	}
	return false
}

// remoteIP is c's peer address without the port, IPv4-mapped addresses
// unmapped (so one client counts once whichever form it arrives in).
func remoteIP(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// guardedConn is an admitted connection; Close counts it out once.
type guardedConn struct {
	net.Conn
	g    *connGuard
	ip   netip.Addr
	once sync.Once
}

// Close closes the connection and frees its slot.
func (c *guardedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.g.release(c.ip) })
	return err
}

// SyscallConn exposes the socket (run_wait_result's disconnect watch peeks
// at it).
func (c *guardedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("connection has no socket")
	}
	return sc.SyscallConn()
}
