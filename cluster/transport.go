package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"vane"
)

// A node's peer port carries two protocols behind one mutual TLS handshake:
// after the handshake the dialer sends one byte that says which.
const (
	protoRaft byte = 'R' // hashicorp/raft's NetworkTransport stream
	protoRPC  byte = 'H' // HTTP/1.1: the internal RPC (handlers.go)
)

const (
	// maxPendingHandshakes bounds the handshakes in progress: a connection
	// accepted beyond it is closed at once, so a flood of slow or idle
	// connections costs at most this many goroutines and descriptors.
	maxPendingHandshakes = 256
)

// errListenerClosed is what Accept returns once the listener is closed.
var errListenerClosed = errors.New("cluster listener closed")

// peerTransport is a node's peer port: it accepts TCP connections, runs the
// TLS handshake of each (off the accept loop, under handshakeTimeout),
// reads the protocol byte, and hands raft connections whose peer is allowed
// to raft (raftLayer) and RPC connections to the internal HTTP server
// (rpcListener). Anything else is closed before a byte of it is decoded.
type peerTransport struct {
	ln        net.Listener
	advertise net.Addr
	id        *identity
	server    *tls.Config
	dialer    peerDialer
	// allowRaft says whether the node id of a verified certificate may
	// speak raft to this node (Node.allowRaft: a member of the raft
	// configuration).
	allowRaft func(peerID string) error
	// handshakeTimeout bounds the TLS handshake and the protocol byte of an
	// accepted connection (Config.HandshakeTimeout).
	handshakeTimeout time.Duration
	log              *slog.Logger

	pending chan struct{} // one slot per handshake in progress
	// hsMu guards handshaking, the connections whose handshake is in
	// progress (close cuts them off instead of waiting for their deadline).
	hsMu        sync.Mutex
	handshaking map[net.Conn]struct{}
	raft        chan net.Conn
	rpc         chan net.Conn

	closed     chan struct{}
	closeOnce  sync.Once
	raftClosed chan struct{}
	raftOnce   sync.Once
	rpcClosed  chan struct{}
	rpcOnce    sync.Once
	wg         sync.WaitGroup
}

// listenPeers binds addr and starts accepting. advertise is the address
// peers dial (raft's LocalAddr); empty means the bound address.
func listenPeers(addr, advertise string, id *identity, allowRaft func(string) error, handshakeTimeout time.Duration, log *slog.Logger) (*peerTransport, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for peers on %s: %w", addr, err)
	}
	adv, err := advertisedAddr(ln.Addr().(*net.TCPAddr), advertise)
	if err != nil {
		ln.Close()
		return nil, err
	}
	t := &peerTransport{ln: ln, advertise: adv, id: id, server: id.serverConfig(), dialer: peerDialer{id.clientConfig()},
		allowRaft: allowRaft, handshakeTimeout: handshakeTimeout, log: log,
		pending: make(chan struct{}, maxPendingHandshakes), handshaking: map[net.Conn]struct{}{}, raft: make(chan net.Conn), rpc: make(chan net.Conn),
		closed: make(chan struct{}), raftClosed: make(chan struct{}), rpcClosed: make(chan struct{})}
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// advertisedAddr is the host (default: the bound IP) and the bound port; an
// unspecified host (0.0.0.0, ::) cannot be dialed by peers.
func advertisedAddr(bound *net.TCPAddr, host string) (*net.TCPAddr, error) {
	ip := bound.IP
	if host != "" {
		h := host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			h = hh
		}
		a, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(h, "0"))
		if err != nil {
			return nil, fmt.Errorf("cannot resolve advertised host %q: %w", host, err)
		}
		ip = a.IP
	}
	if ip == nil || ip.IsUnspecified() {
		return nil, fmt.Errorf("raft address %s cannot be dialed by peers: listen on a specific address or advertise one (--advertise)", bound)
	}
	return &net.TCPAddr{IP: ip, Port: bound.Port}, nil
}

// acceptLoop accepts until the listener closes. Accept errors other than
// the close (EMFILE, ENFILE, aborted connections) are retried with backoff.
func (t *peerTransport) acceptLoop() {
	defer t.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		c, err := t.ln.Accept()
		if err != nil {
			select {
			case <-t.closed:
				return
			default:
			}
			t.log.Warn("cannot accept a peer connection", "err", err, "retry_in", backoff)
			select {
			case <-t.closed:
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		select {
		case t.pending <- struct{}{}:
			t.wg.Add(1)
			go t.admit(c)
		default:
			c.Close()
			t.log.Warn("refused a peer connection: too many handshakes in progress", "remote", c.RemoteAddr())
		}
	}
}

// admit authenticates one accepted connection and hands it on, or closes it.
func (t *peerTransport) admit(c net.Conn) {
	defer t.wg.Done()
	defer func() { <-t.pending }()
	t.hsMu.Lock()
	select {
	case <-t.closed:
		t.hsMu.Unlock()
		c.Close()
		return
	default:
	}
	t.handshaking[c] = struct{}{}
	t.hsMu.Unlock()
	conn, proto, err := t.handshake(c)
	t.hsMu.Lock()
	delete(t.handshaking, c)
	t.hsMu.Unlock()
	if err != nil {
		c.Close()
		t.log.Debug("refused a peer connection", "remote", c.RemoteAddr(), "err", err)
		return
	}
	switch proto {
	case protoRaft:
		t.deliver(t.raft, t.raftClosed, conn)
	case protoRPC:
		t.deliver(t.rpc, t.rpcClosed, conn)
	}
}

// handshake runs the TLS handshake (the client's certificate verified
// against the cluster CA), reads the protocol byte and, for raft, checks the
// peer against the raft configuration: all before a byte of the peer's
// payload is read, and all within handshakeTimeout.
func (t *peerTransport) handshake(c net.Conn) (*tls.Conn, byte, error) {
	if err := c.SetDeadline(time.Now().Add(t.handshakeTimeout)); err != nil {
		return nil, 0, err
	}
	tc := tls.Server(c, t.server)
	if err := tc.Handshake(); err != nil {
		return nil, 0, fmt.Errorf("TLS handshake: %w", err)
	}
	var tag [1]byte
	if _, err := io.ReadFull(tc, tag[:]); err != nil {
		return nil, 0, fmt.Errorf("no protocol byte: %w", err)
	}
	switch tag[0] {
	case protoRaft:
		peer := peerNodeID(tc.ConnectionState())
		if peer == "" {
			return nil, 0, errors.New("raft needs a node certificate")
		}
		if err := t.allowRaft(peer); err != nil {
			if !errors.Is(err, vane.ErrUnavailable) {
				t.log.Warn("refused raft from a node that is not a member", "remote", c.RemoteAddr(), "peer", peer, "err", err)
			}
			return nil, 0, err
		}
	case protoRPC:
	default:
		return nil, 0, fmt.Errorf("unknown protocol byte %#x", tag[0])
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, 0, err
	}
	return tc, tag[0], nil
}

// deliver hands conn to whoever accepts on ch, or closes it when the
// transport (or, for raft, the raft layer) has closed.
func (t *peerTransport) deliver(ch chan net.Conn, stop chan struct{}, conn net.Conn) {
	select {
	case ch <- conn:
	case <-stop:
		conn.Close()
	case <-t.closed:
		conn.Close()
	}
}

// dialHandshakeTimeout bounds a dialed connection's TLS handshake.
const dialHandshakeTimeout = 5 * time.Second

// peerDialer opens connections to peers' ports as a holder of a cluster
// certificate.
type peerDialer struct{ tls *tls.Config }

// dial connects to a peer, runs the TLS handshake (the server's certificate
// verified against the cluster CA) and sends proto. Any error means nothing
// of the caller's request was sent.
func (d peerDialer) dial(ctx context.Context, addr string, proto byte) (net.Conn, error) {
	nd := net.Dialer{KeepAlive: 30 * time.Second}
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(dialHandshakeTimeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(deadline) {
		deadline = cd
	}
	_ = c.SetDeadline(deadline)
	tc := tls.Client(c, d.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	if _, err := tc.Write([]byte{proto}); err != nil {
		c.Close()
		return nil, fmt.Errorf("cannot write to %s: %w", addr, err)
	}
	_ = c.SetDeadline(time.Time{})
	return tc, nil
}

// close stops accepting, closes the listener and cuts off the handshakes in
// progress; conns already handed on belong to their servers.
func (t *peerTransport) close() error {
	var err error
	t.closeOnce.Do(func() {
		t.hsMu.Lock()
		close(t.closed)
		for c := range t.handshaking {
			c.Close()
		}
		t.hsMu.Unlock()
		err = t.ln.Close()
		t.wg.Wait()
	})
	return err
}

// raftLayer is the raft.StreamLayer over the peer port.
type raftLayer struct{ t *peerTransport }

var _ raft.StreamLayer = raftLayer{}

// Accept returns the next authenticated raft connection.
func (l raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.t.raft:
		return c, nil
	case <-l.t.raftClosed:
		return nil, errListenerClosed
	case <-l.t.closed:
		return nil, errListenerClosed
	}
}

// Close stops handing raft connections on (raft's transport calls it when
// the store closes); the port keeps serving the internal RPC until the Node
// closes.
func (l raftLayer) Close() error {
	l.t.raftOnce.Do(func() { close(l.t.raftClosed) })
	return nil
}

// Addr is the advertised raft address.
func (l raftLayer) Addr() net.Addr { return l.t.advertise }

// Dial opens an authenticated raft connection to a peer.
func (l raftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return l.t.dialer.dial(ctx, string(addr), protoRaft)
}

// rpcListener is the net.Listener of the internal HTTP server.
type rpcListener struct{ t *peerTransport }

// Accept returns the next authenticated RPC connection.
func (l rpcListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.t.rpc:
		return c, nil
	case <-l.t.rpcClosed:
		return nil, errListenerClosed
	case <-l.t.closed:
		return nil, errListenerClosed
	}
}

// Close stops handing RPC connections on; the peer transport owns the port
// (peerTransport.close).
func (l rpcListener) Close() error {
	l.t.rpcOnce.Do(func() { close(l.t.rpcClosed) })
	return nil
}

// Addr is the advertised peer address.
func (l rpcListener) Addr() net.Addr { return l.t.advertise }
