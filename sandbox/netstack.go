package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// A jail with NetworkEgress has one tun device (made by its init, see
// egress_up in jailinit.c) whose other end is a netstack: gVisor's
// user-space TCP/IP stack, run here in vane. It accepts every TCP connection
// the job opens, to any address, and hands the address to Spec.Egress, which
// checks it and dials it from the host; the two ends are then spliced. DNS
// queries (UDP port 53, to any address) are answered from Egress.Lookup. No
// other packet goes anywhere: the job's packets never reach the host's
// network stack, so there is nothing to route, filter or NAT there, and
// vane needs no privilege for it beyond what the jail already has.
type netstack struct {
	st     *stack.Stack
	link   stack.LinkEndpoint
	tun    int
	egress Egress
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex            // guards conns, splices, closed, drainBy and each splice's down
	conns   map[net.Conn]struct{} // DNS flows
	splices map[*splice]struct{}
	// closed: close has begun; new connections are refused.
	closed bool
	// drainBy is when close stops passing on what the job wrote.
	drainBy time.Time
}

const (
	netstackNIC tcpip.NICID = 1
	// netstackMTU is the tun's default MTU.
	netstackMTU = 1500
	// maxPendingConns bounds the job's half-open connections (SYNs whose
	// dial is in flight); further SYNs are dropped until some complete.
	maxPendingConns = 64
	// dnsIdle is how long a DNS flow (one source port) is kept without a
	// query before its endpoint is closed: long enough for a resolver's A
	// and AAAA on one port, short enough that resolvers using a new port
	// per lookup (glibc) do not fill maxDNSFlows.
	dnsIdle = 500 * time.Millisecond
	// maxDNSFlows bounds the DNS flows open at once; a query on a further
	// one is dropped (the resolver retries).
	maxDNSFlows = 64
	// drainTimeout bounds how long, after the job ended, what it wrote is
	// still passed on (see close).
	drainTimeout = 2 * time.Second
)

// recvFD reads one message with one descriptor from the init's control
// socket, tagged tag.
func recvFD(ctl *os.File, tag string) (int, error) {
	buf := make([]byte, 16)
	oob := make([]byte, unix.CmsgSpace(4))
	rc, err := ctl.SyscallConn()
	if err != nil {
		return -1, err
	}
	var n, oobn int
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	}); err != nil {
		return -1, err
	}
	if rerr != nil {
		return -1, fmt.Errorf("cannot receive the jail's %s device: %w", tag, rerr)
	}
	if n == 0 {
		return -1, fmt.Errorf("the jail's init ended before sending its %s device", tag)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return -1, fmt.Errorf("the jail's init sent no %s device", tag)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("the jail's init sent no %s device", tag)
	}
	if string(buf[:n]) != tag {
		unix.Close(fds[0])
		return -1, fmt.Errorf("the jail's init sent %q, expected its %s device", buf[:n], tag)
	}
	return fds[0], nil
}

// jailNet is a jail's network under NetworkEgress. Its stack starts on the
// device's first packet: a job that never uses the network pays for none of
// it (a stack costs about 0.5 ms of CPU to start and 0.2 ms to close, the
// whole of what egress added to a jailed `true`). The device sends nothing
// of its own (no router solicitations, no duplicate address detection:
// egress_up in jailinit.c), so its first packet is the job's.
type jailNet struct {
	tun  int      // the device; startNetstack owns it once the stack runs
	eg   Egress   // what the stack hands connections to
	wake *os.File // a duplicate of tun, in the runtime's netpoller until the first packet
	done chan struct{}

	mu     sync.Mutex // guards closed and stack
	closed bool       // the job is over: no stack starts any more
	stack  *netstack  // nil until the first packet
	err    error      // why the stack did not start
}

// newJailNet takes tun (owning it from now on) and starts the stack when a
// packet arrives on it.
func newJailNet(tun int, eg Egress) (*jailNet, error) {
	dup, err := unix.FcntlInt(uintptr(tun), unix.F_DUPFD_CLOEXEC, 0)
	if err == nil {
		// The two descriptors share the file's flags: os.NewFile polls a
		// non-blocking one with the netpoller, and the stack's reader wants
		// it non-blocking too.
		err = unix.SetNonblock(dup, true)
		if err != nil {
			unix.Close(dup)
		}
	}
	if err != nil {
		closeTun(tun)
		return nil, fmt.Errorf("cannot attach the jail's network: %w", err)
	}
	j := &jailNet{tun: tun, eg: eg, wake: os.NewFile(uintptr(dup), "tun"), done: make(chan struct{})}
	go j.waitFirstPacket()
	return j, nil
}

// waitFirstPacket waits until the device has a packet to read (without
// reading it: the stack will) or close, and starts the stack in the first
// case.
func (j *jailNet) waitFirstPacket() {
	defer close(j.done)
	rc, err := j.wake.SyscallConn()
	if err == nil {
		// Each call asks the device itself whether a packet waits: the
		// netpoller's readiness is reset before the first call and is
		// edge-triggered, so a packet that came before it would otherwise
		// be seen only with the next one (a SYN's retransmission, 1 s
		// later, which the job's connection then also sent twice).
		err = rc.Read(func(fd uintptr) bool {
			p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, _ := unix.Poll(p, 0)
			return n > 0
		})
	}
	_ = j.wake.Close()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed || err != nil {
		return
	}
	j.stack, j.err = startNetstack(j.tun, j.eg)
}

// close ends the jail's network once the job is dead: the stack's close
// if it started, else just the device's.
func (j *jailNet) close() {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	_ = j.wake.Close() // ends the wait if no packet came
	<-j.done
	switch {
	case j.stack != nil:
		j.stack.close()
	case j.err == nil:
		closeTun(j.tun)
	}
	// else startNetstack failed and released the device itself.
}

// netstacksStarted counts the stacks started, for the tests that a job
// that does not use the network starts none.
var netstacksStarted atomic.Int64

// startNetstack runs a network stack on tun (which it owns from now on)
// that hands the jail's connections and DNS queries to eg.
func startNetstack(tun int, eg Egress) (*netstack, error) {
	netstacksStarted.Add(1)
	ep, err := fdbased.New(&fdbased.Options{
		FDs:                []int{tun},
		MTU:                netstackMTU,
		PacketDispatchMode: fdbased.Readv,
		// One goroutine per jail is plenty: a job's traffic is one flow of
		// packets from one device.
		ProcessorsPerChannel: 1,
	})
	if err != nil {
		unix.Close(tun)
		return nil, fmt.Errorf("cannot attach the jail's network: %w", err)
	}
	st := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	ctx, cancel := context.WithCancel(context.Background())
	n := &netstack{st: st, link: ep, tun: tun, egress: eg, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}, splices: map[*splice]struct{}{}}
	fail := func(what string, e tcpip.Error) (*netstack, error) {
		cancel()
		st.Destroy()
		unix.Close(tun)
		return nil, fmt.Errorf("cannot start the jail's network: %s: %s", what, e)
	}
	// The handlers first: CreateNIC starts the device's reader, which
	// reads them.
	fwd := tcp.NewForwarder(st, 0, maxPendingConns, n.forwardTCP)
	st.SetTransportProtocolHandler(tcp.ProtocolNumber, fwd.HandlePacket)
	dns := &dnsServer{n: n}
	st.SetTransportProtocolHandler(udp.ProtocolNumber, udp.NewForwarder(st, dns.handle).HandlePacket)
	if e := st.CreateNIC(netstackNIC, ep); e != nil {
		return fail("create NIC", e)
	}
	// Promiscuous: accept packets to any address (the job connects to the
	// world); spoofing: answer from that address.
	if e := st.SetPromiscuousMode(netstackNIC, true); e != nil {
		return fail("promiscuous mode", e)
	}
	if e := st.SetSpoofing(netstackNIC, true); e != nil {
		return fail("spoofing", e)
	}
	st.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: netstackNIC},
		{Destination: header.IPv6EmptySubnet, NIC: netstackNIC},
	})
	return n, nil
}

// forwardTCP takes one SYN from the job: the destination is dialed by
// Egress first, and only if that succeeds is the job's handshake completed,
// so a refused or unreachable destination looks to the job like one that
// refused the connection.
func (n *netstack) forwardTCP(r *tcp.ForwarderRequest) {
	// The forwarder runs each handler on a goroutine of its own.
	id := r.ID()
	dst := netip.AddrPortFrom(addrOf(id.LocalAddress), id.LocalPort)
	if !n.begin() {
		r.Complete(true)
		return
	}
	defer n.wg.Done()
	up, err := n.egress.Dial(n.ctx, dst)
	if err != nil {
		r.Complete(true)
		return
	}
	// The splice is known to close before the job's handshake completes:
	// the job may send and exit at once, and close must wait for what it
	// sent (it did not when the splice was added after the handshake).
	sp := &splice{up: up, sent: make(chan struct{})}
	if !n.trackSplice(sp, true) {
		up.Close()
		r.Complete(true)
		return
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		up.Close()
		r.Complete(true)
		close(sp.sent)
		n.trackSplice(sp, false)
		return
	}
	r.Complete(false)
	down := gonet.NewTCPConn(&wq, ep)
	n.mu.Lock()
	sp.down = down
	closing, by := n.closed, n.drainBy
	n.mu.Unlock()
	if closing {
		_ = down.SetReadDeadline(by)
		_ = up.SetWriteDeadline(by)
	}
	sp.run()
	n.trackSplice(sp, false)
}

// begin counts one more goroutine of the stack's (n.wg), unless close has
// begun; the two happen under one lock, so close's Wait sees every one.
func (n *netstack) begin() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.wg.Add(1)
	return true
}

// splice carries one connection: down is the job's end (in the netstack),
// up the host's.
type splice struct {
	down *gonet.TCPConn // set once the job's handshake is done (under netstack.mu)
	up   net.Conn
	sent chan struct{} // closed when everything the job sent has been passed up
}

// run copies both ways until both directions end, then closes both ends.
func (sp *splice) run() {
	back := make(chan struct{})
	go func() {
		_, _ = io.Copy(sp.down, sp.up)
		_ = sp.down.CloseWrite()
		close(back)
	}()
	_, _ = io.Copy(sp.up, sp.down)
	if cw, ok := sp.up.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	close(sp.sent)
	<-back
	sp.down.Close()
	sp.up.Close()
}

// track adds a live DNS flow, counted in n.wg, unless close has begun; the
// flow's goroutine calls untrack when it ends.
func (n *netstack) track(c net.Conn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.conns[c] = struct{}{}
	n.wg.Add(1)
	return true
}

func (n *netstack) untrack(c net.Conn) {
	n.mu.Lock()
	delete(n.conns, c)
	n.mu.Unlock()
	n.wg.Done()
}

// trackSplice adds or removes a spliced connection; adding fails once close
// has begun.
func (n *netstack) trackSplice(sp *splice, add bool) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if add && n.closed {
		return false
	}
	if add {
		n.splices[sp] = struct{}{}
	} else {
		delete(n.splices, sp)
	}
	return true
}

// close ends the jail's network once the job is dead. What the job wrote
// before it ended is still passed on, as a host's kernel would after a
// process exits: each connection's upward copy runs until the job's side
// ends (its FIN or reset is already in the stack) or drainTimeout, whichever
// is first. Then in-flight dials are cancelled, every connection is closed,
// the stack's goroutines end and the tun device is released.
func (n *netstack) close() {
	// Bounded both ways: the read deadline ends a copy waiting on the job,
	// the write deadline one waiting on a server that stopped reading, and
	// the timer whatever is left. A splice whose job end is not made yet
	// takes the deadline when it is (forwardTCP).
	deadline := time.Now().Add(drainTimeout)
	n.mu.Lock()
	n.closed, n.drainBy = true, deadline
	splices := make([]*splice, 0, len(n.splices))
	for sp := range n.splices {
		splices = append(splices, sp)
		if sp.down != nil {
			_ = sp.down.SetReadDeadline(deadline)
		}
		_ = sp.up.SetWriteDeadline(deadline)
	}
	n.mu.Unlock()
	timer := time.NewTimer(drainTimeout + 100*time.Millisecond)
	defer timer.Stop()
drain:
	for _, sp := range splices {
		select {
		case <-sp.sent:
		case <-timer.C:
			break drain
		}
	}
	n.cancel()
	n.mu.Lock()
	for c := range n.conns {
		c.Close()
	}
	for sp := range n.splices {
		if sp.down != nil {
			sp.down.Close()
		}
		sp.up.Close()
	}
	n.mu.Unlock()
	// Aborting every endpoint ends the handshakes still in progress (a
	// job that opened connections and exited at once), which would
	// otherwise run out their retries, minutes.
	n.st.Close()
	// The rest is bounded too: what is left finishes in the background
	// (the job is dead, its upstream connections closed by its Session).
	done := make(chan struct{})
	pendingRemovals.Add(1)
	go func() {
		defer pendingRemovals.Done()
		n.wg.Wait()
		// The device's reader is stopped first, outside the stack's lock:
		// Stack.Wait removes the NIC holding that lock and waits for the
		// reader, which may be delivering a packet (an IPv6 one asks the
		// stack for the NIC's name, under the same lock), and the two wait
		// for each other forever. Detached here, the reader finishes its
		// packet and stops.
		n.link.Attach(nil)
		n.st.Close()
		n.st.Wait()
		closeTun(n.tun)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(drainTimeout):
	}
}

// closeTun releases vane's end of a jail's tun device in the background.
// The device is persistent (jailinit.c's egress_up), so the close only
// detaches from it and the kernel unregisters it with the jail's network
// namespace; a close that unregistered waited for RCU grace periods
// holding the rtnl lock (15 to 40 ms measured), stalling the network
// set-up of the next jails.
func closeTun(fd int) {
	pendingRemovals.Add(1)
	go func() {
		defer pendingRemovals.Done()
		unix.Close(fd)
	}()
}

// addrOf converts a netstack address to a netip one.
func addrOf(a tcpip.Address) netip.Addr {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return ip
}

// dnsServer answers the job's DNS queries, on UDP port 53 of any address
// (the jail's resolv.conf names the tun's gateway; a job that asks another
// server is answered the same way). Other UDP is dropped: vane carries TCP
// and DNS only.
type dnsServer struct {
	n     *netstack
	mu    sync.Mutex // guards flows
	flows int        // DNS flows open, at most maxDNSFlows
}

func (d *dnsServer) handle(r *udp.ForwarderRequest) bool {
	id := r.ID()
	if id.LocalPort != 53 {
		return true // dropped
	}
	d.mu.Lock()
	if d.flows >= maxDNSFlows {
		d.mu.Unlock()
		return true
	}
	d.flows++
	d.mu.Unlock()
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		d.done()
		return true
	}
	c := gonet.NewUDPConn(&wq, ep)
	if !d.n.track(c) {
		c.Close()
		d.done()
		return true
	}
	go func() {
		defer d.n.untrack(c)
		defer d.done()
		defer c.Close()
		d.serve(c)
	}()
	return true
}

func (d *dnsServer) done() {
	d.mu.Lock()
	d.flows--
	d.mu.Unlock()
}

// serve answers the queries of one flow until it is idle for dnsIdle.
func (d *dnsServer) serve(c *gonet.UDPConn) {
	buf := make([]byte, 1500)
	for {
		_ = c.SetReadDeadline(time.Now().Add(dnsIdle))
		k, err := c.Read(buf)
		if err != nil {
			return
		}
		resp, err := d.answer(buf[:k])
		if err != nil {
			continue // not a query we can parse: dropped, as a server would
		}
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}

// answer builds the response to one query: A and AAAA from Egress.Lookup
// (an empty answer when the name has only the other family), NXDOMAIN for a
// name that does not exist, REFUSED when Egress refuses to resolve (policy
// none), SERVFAIL when resolving failed otherwise (a timeout), and NOTIMP
// for every other type (SRV, MX, TXT: not carried yet).
func (d *dnsServer) answer(q []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, err
	}
	qs, err := p.AllQuestions()
	if err != nil || h.Response || len(qs) != 1 {
		return nil, errors.New("not a single question")
	}
	question := qs[0]
	rh := dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	var addrs []netip.Addr
	switch question.Type {
	case dnsmessage.TypeA, dnsmessage.TypeAAAA:
		network := "ip4"
		if question.Type == dnsmessage.TypeAAAA {
			network = "ip6"
		}
		ctx, cancel := context.WithTimeout(d.n.ctx, 5*time.Second)
		name := question.Name.String()
		addrs, err = d.n.egress.Lookup(ctx, network, name)
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			// A name with records of the other family only answers empty
			// (NXDOMAIN would make some resolvers drop the other answer).
			if _, err2 := d.n.egress.Lookup(ctx, "ip", name); err2 == nil {
				err = nil
			} else {
				rh.RCode = dnsmessage.RCodeNameError
			}
		} else if err != nil {
			rh.RCode = dnsmessage.RCodeServerFailure
			var refused interface{ Refused() bool }
			if errors.As(err, &refused) && refused.Refused() {
				rh.RCode = dnsmessage.RCodeRefused
			}
		}
		cancel()
	default:
		rh.RCode = dnsmessage.RCodeNotImplemented
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(question); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	// TTL 0: the job asks again, and the answer is checked at the dial
	// anyway; caching here would only hide a changed record.
	rrh := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 0}
	for _, a := range addrs {
		switch {
		case question.Type == dnsmessage.TypeA && a.Is4():
			rrh.Type = dnsmessage.TypeA
			err = b.AResource(rrh, dnsmessage.AResource{A: a.As4()})
		case question.Type == dnsmessage.TypeAAAA && a.Is6() && !a.Is4In6():
			rrh.Type = dnsmessage.TypeAAAA
			err = b.AAAAResource(rrh, dnsmessage.AAAAResource{AAAA: a.As16()})
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	return b.Finish()
}
