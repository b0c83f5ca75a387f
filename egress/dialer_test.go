package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// testServer is a TCP listener on 127.0.0.1 (port 0) whose accepted
// connections arrive on accepted. Tests dial nothing else.
type testServer struct {
	ln       *net.TCPListener
	addr     netip.AddrPort
	accepted chan net.Conn
}

// MustListen starts a testServer that hands every connection to handle
// (nil: hold it open until the test ends) and closes everything at cleanup.
func MustListen(tb testing.TB, handle func(net.Conn)) *testServer {
	tb.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatalf("cannot listen on 127.0.0.1: %v", err)
	}
	srv := &testServer{ln: ln, addr: ln.Addr().(*net.TCPAddr).AddrPort(), accepted: make(chan net.Conn, 256)}
	srv.addr = netip.AddrPortFrom(srv.addr.Addr().Unmap(), srv.addr.Port())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case srv.accepted <- c:
			default: // nobody is counting connections beyond the buffer
			}
			if handle != nil {
				wg.Add(1)
				go func() {
					defer wg.Done()
					handle(c)
				}()
			}
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return srv
}

// echo writes back what it reads until EOF.
func echo(c net.Conn) { _, _ = io.Copy(c, c) }

// refusals records what a session passes to onRefuse.
type refusals struct {
	mu   sync.Mutex
	errs []error
}

func (r *refusals) add(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

func (r *refusals) list() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

// MustSession starts a session whose policy allows exactly the servers'
// addresses (by port-qualified rules) and closes it at cleanup.
func MustSession(tb testing.TB, l Limits, c *Counters, r *refusals, servers ...*testServer) *Session {
	tb.Helper()
	var p Policy
	for _, srv := range servers {
		p.Allow = append(p.Allow, Rule{Prefix: netip.PrefixFrom(srv.addr.Addr(), 32), Port: srv.addr.Port()})
	}
	var onRefuse func(error)
	if r != nil {
		onRefuse = r.add
	}
	s := NewSession(p, l, c, onRefuse)
	tb.Cleanup(s.Close)
	return s
}

// MustDial dials dst through s.
func MustDial(tb testing.TB, s *Session, dst netip.AddrPort) net.Conn {
	tb.Helper()
	c, err := s.Dial(context.Background(), dst)
	if err != nil {
		tb.Fatalf("cannot dial %s: %v", dst, err)
	}
	return c
}

// MustBudget asserts that err is a *BudgetError for limit and returns it.
func MustBudget(tb testing.TB, err error, limit string) *BudgetError {
	tb.Helper()
	var be *BudgetError
	if !errors.As(err, &be) || !errors.Is(err, ErrBudgetExceeded) {
		tb.Fatalf("got %v (%T), expected a *BudgetError", err, err)
	}
	if be.Limit != limit {
		tb.Fatalf("budget %s ran out, expected %s: %v", be.Limit, limit, err)
	}
	return be
}

// assertNoConnection proves that nothing reached srv: Accept with a short
// deadline must time out. The deadline only bounds how long absence is
// looked for; no success depends on it.
func assertNoConnection(tb testing.TB, srv *testServer) {
	tb.Helper()
	select {
	case c := <-srv.accepted:
		tb.Fatalf("the server accepted a connection from %s", c.RemoteAddr())
	case <-time.After(100 * time.Millisecond):
	}
}

func TestSession_Dial_BytesFlow(t *testing.T) {
	srv := MustListen(t, echo)
	var counters Counters
	s := MustSession(t, Limits{}, &counters, nil, srv)
	c := MustDial(t, s, srv.addr)
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != "hello" {
		t.Fatalf("echo %q", buf)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	want := CountersSnapshot{Allowed: 1, BytesIn: 5, BytesOut: 5}
	if got := counters.Snapshot(); got != want {
		t.Errorf("counters %+v, expected %+v", got, want)
	}
}

func TestSession_Dial_HalfClose(t *testing.T) {
	// The server answers only once it has read everything: the splice
	// passes a job's half-close on through CloseWrite.
	srv := MustListen(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		_, _ = c.Write([]byte(strings.ToUpper(string(b))))
		c.Close()
	})
	s := MustSession(t, Limits{}, nil, nil, srv)
	c := MustDial(t, s, srv.addr)
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "PING" {
		t.Fatalf("got %q, %v", b, err)
	}
}

func TestSession_Dial_MaxBytesCutsWrites(t *testing.T) {
	received := make(chan []byte, 1)
	srv := MustListen(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		received <- b
	})
	other := MustListen(t, nil)
	var counters Counters
	var refused refusals
	s := MustSession(t, Limits{MaxBytes: 10}, &counters, &refused, srv, other)
	bystander := MustDial(t, s, other.addr)
	c := MustDial(t, s, srv.addr)

	if n, err := c.Write([]byte("hello!")); n != 6 || err != nil {
		t.Fatalf("first write: %d, %v", n, err)
	}
	n, err := c.Write([]byte("world!"))
	if n != 4 {
		t.Errorf("second write wrote %d bytes, expected the 4 left", n)
	}
	MustBudget(t, err, "MaxBytes")
	if got := <-received; string(got) != "hello!worl" {
		t.Errorf("server received %q, expected the first 10 bytes and then the end", got)
	}
	_, err = c.Write([]byte("x"))
	MustBudget(t, err, "MaxBytes")
	_, err = c.Read(make([]byte, 1))
	MustBudget(t, err, "MaxBytes")
	// The budget is the job's, so its other connections are cut too.
	_, err = bystander.Read(make([]byte, 1))
	MustBudget(t, err, "MaxBytes")
	_, err = s.Dial(context.Background(), srv.addr)
	be := MustBudget(t, err, "MaxBytes")
	if be.Dst != srv.addr {
		t.Errorf("the refused dial names %s, expected %s", be.Dst, srv.addr)
	}

	if got := counters.Snapshot(); got.BytesOut != 10 || got.BudgetExceeded != 2 || got.Allowed != 2 {
		t.Errorf("counters %+v: expected 10 bytes out, 2 budget refusals (the cut and the dial), 2 allowed", got)
	}
	if errs := refused.list(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "MaxBytes 10") {
		t.Errorf("onRefuse got %v, expected the MaxBytes cut once", errs)
	}
	s.mu.Lock()
	active := s.active
	s.mu.Unlock()
	if active != 0 {
		t.Errorf("%d slots still taken after the cut", active)
	}
}

func TestSession_Dial_MaxBytesCutsReads(t *testing.T) {
	srv := MustListen(t, func(c net.Conn) {
		_, _ = c.Write([]byte("0123456789abcdefghij"))
		_, _ = io.Copy(io.Discard, c)
	})
	var counters Counters
	s := MustSession(t, Limits{MaxBytes: 10}, &counters, nil, srv)
	c := MustDial(t, s, srv.addr)
	got, err := io.ReadAll(c)
	MustBudget(t, err, "MaxBytes")
	if string(got) != "0123456789" {
		t.Errorf("read %q, expected exactly the first 10 bytes", got)
	}
	if in := counters.Snapshot().BytesIn; in != 10 {
		t.Errorf("BytesIn %d, expected 10", in)
	}
}

func TestSession_Dial_MaxConns(t *testing.T) {
	srv := MustListen(t, nil)
	// A port with nothing listening: a failed dial counts as well.
	closed := MustListen(t, nil)
	closed.ln.Close()

	var refused refusals
	s := NewSession(Policy{Allow: MustParseAllow(t, "127.0.0.1")}, Limits{MaxConns: 2}, nil, refused.add)
	defer s.Close()
	if _, err := s.Dial(context.Background(), closed.addr); err == nil {
		t.Fatal("dialing a closed port succeeded")
	}
	MustDial(t, s, srv.addr).Close()
	for range 2 {
		_, err := s.Dial(context.Background(), srv.addr)
		be := MustBudget(t, err, "MaxConns")
		if be.Value != 2 || !strings.Contains(be.Error(), "MaxConns 2") || !strings.Contains(be.Error(), srv.addr.String()) {
			t.Errorf("message %q", be)
		}
	}
	if errs := refused.list(); len(errs) != 1 {
		t.Errorf("onRefuse called %d times, expected once per limit: %v", len(errs), errs)
	}
	<-srv.accepted
	assertNoConnection(t, srv)
}

func TestSession_Dial_MaxConcurrent(t *testing.T) {
	srv := MustListen(t, nil)
	var counters Counters
	s := MustSession(t, Limits{MaxConcurrent: 2}, &counters, nil, srv)
	c1 := MustDial(t, s, srv.addr)
	c2 := MustDial(t, s, srv.addr)
	defer c2.Close()
	_, err := s.Dial(context.Background(), srv.addr)
	be := MustBudget(t, err, "MaxConcurrent")
	if !strings.Contains(be.Error(), "MaxConcurrent 2") {
		t.Errorf("message %q", be)
	}
	// Closing twice frees one slot, not two.
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c1.Close(); err == nil {
		t.Error("second Close returned nil; expected the closed connection's error")
	}
	c3 := MustDial(t, s, srv.addr)
	defer c3.Close()
	_, err = s.Dial(context.Background(), srv.addr)
	MustBudget(t, err, "MaxConcurrent")
	if got := counters.Snapshot(); got.Allowed != 3 || got.BudgetExceeded != 2 {
		t.Errorf("counters %+v", got)
	}
}

func TestSession_Close(t *testing.T) {
	srv := MustListen(t, nil)
	s := MustSession(t, Limits{}, nil, nil, srv)
	c1 := MustDial(t, s, srv.addr)
	c2 := MustDial(t, s, srv.addr)
	server1, server2 := <-srv.accepted, <-srv.accepted

	s.Close()
	s.Close() // idempotent
	for _, c := range []net.Conn{c1, c2} {
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("read after the session closed: %v, expected net.ErrClosed", err)
		}
	}
	// The server sees each connection end (EOF or reset), with no timeout.
	for _, sc := range []net.Conn{server1, server2} {
		if _, err := sc.Read(make([]byte, 1)); err == nil {
			t.Error("the server's end is still open")
		}
	}
	if _, err := s.Dial(context.Background(), srv.addr); !errors.Is(err, ErrClosed) {
		t.Errorf("dial after Close: %v, expected ErrClosed", err)
	}
	if _, err := s.Lookup(context.Background(), "ip", "localhost"); !errors.Is(err, ErrClosed) {
		t.Errorf("lookup after Close: %v, expected ErrClosed", err)
	}
	if err := c1.Close(); err == nil {
		t.Error("closing a connection the session closed returned nil")
	}
}

func TestSession_Dial_RefusedNeverConnects(t *testing.T) {
	srv := MustListen(t, nil)
	otherPort := srv.addr.Port() + 1
	if otherPort == 0 {
		otherPort = srv.addr.Port() - 1
	}
	policies := []struct {
		name string
		p    Policy
		rule string
	}{
		{"public", Policy{}, "loopback"},
		{"other port allowed", Policy{Allow: []Rule{{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Port: otherPort}}}, "loopback"},
		{"none with the address allowed", Policy{Mode: ModeNone, Allow: MustParseAllow(t, "127.0.0.1")}, "egress mode none"},
		{"workspace none", Policy{Mode: ModeAll}.Narrow(ModeNone), "egress mode none"},
	}
	for _, tc := range policies {
		t.Run(tc.name, func(t *testing.T) {
			var counters Counters
			s := NewSession(tc.p, Limits{}, &counters, nil)
			defer s.Close()
			_, err := s.Dial(context.Background(), srv.addr)
			re := MustRefused(t, err)
			if !strings.Contains(re.Rule, tc.rule) {
				t.Errorf("rule %q, expected %q", re.Rule, tc.rule)
			}
			if got := counters.Snapshot(); got.Refused != 1 || got.Allowed != 0 {
				t.Errorf("counters %+v", got)
			}
			assertNoConnection(t, srv)
		})
	}
	// The same session allowed: the listener does see it, so the absence
	// above means something.
	s := MustSession(t, Limits{}, nil, nil, srv)
	MustDial(t, s, srv.addr).Close()
	<-srv.accepted
}

func TestSession_Dial_ReportsOncePerDestination(t *testing.T) {
	var counters Counters
	var refused refusals
	s := NewSession(Policy{}, Limits{}, &counters, refused.add)
	defer s.Close()
	dsts := []string{"127.0.0.1:1", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1", "[::1]:1"}
	for _, d := range dsts {
		_, err := s.Dial(context.Background(), netip.MustParseAddrPort(d))
		MustRefused(t, err) // every time, not only when reported
	}
	errs := refused.list()
	if len(errs) != 3 {
		t.Fatalf("onRefuse called %d times, expected 3 (one per destination): %v", len(errs), errs)
	}
	for i, want := range []string{"127.0.0.1:1", "127.0.0.1:2", "[::1]:1"} {
		if re := MustRefused(t, errs[i]); re.Dst.String() != want {
			t.Errorf("report %d is for %s, expected %s", i, re.Dst, want)
		}
	}
	if got := counters.Snapshot().Refused; got != int64(len(dsts)) {
		t.Errorf("Refused %d, expected %d", got, len(dsts))
	}
}

func TestSession_Dial_ReportsAreBounded(t *testing.T) {
	var refused refusals
	s := NewSession(Policy{}, Limits{}, nil, refused.add)
	defer s.Close()
	for port := range uint16(3 * maxReported) {
		_, err := s.Dial(context.Background(), netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), port+1))
		MustRefused(t, err)
	}
	errs := refused.list()
	if len(errs) != maxReported {
		t.Fatalf("onRefuse called %d times, expected %d", len(errs), maxReported)
	}
	last := errs[len(errs)-1]
	MustRefused(t, last)
	if !strings.Contains(last.Error(), "further refusals are not reported") {
		t.Errorf("the last report does not say it is the last: %v", last)
	}
}

// staticResolver answers every lookup with addrs and counts the lookups.
type staticResolver struct {
	mu    sync.Mutex
	calls int
	addrs []netip.Addr
}

func (r *staticResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	return append([]netip.Addr(nil), r.addrs...), nil
}

func TestSession_Lookup(t *testing.T) {
	answer := []netip.Addr{
		netip.MustParseAddr("::ffff:10.0.0.1"),
		netip.MustParseAddr("127.0.0.1"),
		netip.MustParseAddr("169.254.169.254"),
		netip.MustParseAddr("2606:4700::1111"),
	}
	t.Run("public returns every address", func(t *testing.T) {
		res := &staticResolver{addrs: answer}
		s := NewSession(Policy{}, Limits{}, nil, nil)
		defer s.Close()
		s.Resolver = res
		got, err := s.Lookup(context.Background(), "ip", "rebind.example")
		if err != nil {
			t.Fatal(err)
		}
		want := "[10.0.0.1 127.0.0.1 169.254.169.254 2606:4700::1111]"
		if fmt.Sprint(got) != want {
			t.Errorf("got %v, expected %s (unmapped, not filtered)", got, want)
		}
	})
	refusedCases := []struct {
		name      string
		p         Policy
		flag      string
		workspace Mode
	}{
		{"none", Policy{Mode: ModeNone}, "--egress public", ""},
		{"workspace none", Policy{}.Narrow(ModeNone), "", ModeNone},
	}
	for _, tc := range refusedCases {
		t.Run(tc.name, func(t *testing.T) {
			res := &staticResolver{addrs: answer}
			var counters Counters
			var refused refusals
			s := NewSession(tc.p, Limits{}, &counters, refused.add)
			defer s.Close()
			s.Resolver = res
			for range 3 {
				_, err := s.Lookup(context.Background(), "ip4", "example.com.")
				re := MustRefused(t, err)
				if re.Host != "example.com." || re.Flag != tc.flag || re.Workspace != tc.workspace {
					t.Errorf("host %q flag %q workspace %q", re.Host, re.Flag, re.Workspace)
				}
				if msg := re.Error(); !strings.Contains(msg, `a DNS lookup of "example.com."`) || !strings.Contains(msg, "egress mode public") && !strings.Contains(msg, "--egress public") {
					t.Errorf("message %q", msg)
				}
			}
			if res.calls != 0 {
				t.Errorf("the resolver was asked %d times", res.calls)
			}
			if n := len(refused.list()); n != 1 {
				t.Errorf("onRefuse called %d times, expected once per host", n)
			}
			if got := counters.Snapshot().Refused; got != 3 {
				t.Errorf("Refused %d, expected 3", got)
			}
		})
	}
}

// TestSession_Dial_Concurrent races dials, transfers and closes against the
// budgets; run with -race.
func TestSession_Dial_Concurrent(t *testing.T) {
	srv := MustListen(t, echo)
	var counters Counters
	s := MustSession(t, Limits{MaxConcurrent: 4, MaxConns: 1000}, &counters, nil, srv)
	const workers, dials = 16, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*dials)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range dials {
				c, err := s.Dial(context.Background(), srv.addr)
				if err != nil {
					var be *BudgetError
					if !errors.As(err, &be) || be.Limit != "MaxConcurrent" {
						errs <- err
					}
					continue
				}
				msg := fmt.Sprintf("w%d-%d", w, i)
				_, err = c.Write([]byte(msg))
				buf := make([]byte, len(msg))
				if err == nil {
					_, err = io.ReadFull(c, buf)
				}
				if err == nil && string(buf) != msg {
					err = fmt.Errorf("echo %q, expected %q", buf, msg)
				}
				if err != nil {
					errs <- err
				}
				c.Close()
				c.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	snap := counters.Snapshot()
	if snap.Allowed+snap.BudgetExceeded != workers*dials {
		t.Errorf("counters %+v do not add up to %d dials", snap, workers*dials)
	}
	if snap.BytesIn != snap.BytesOut {
		t.Errorf("%d bytes in, %d out", snap.BytesIn, snap.BytesOut)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active != 0 || len(s.conns) != 0 {
		t.Errorf("%d slots taken and %d connections held after every connection closed", s.active, len(s.conns))
	}
}

func TestLimits_Validate(t *testing.T) {
	if err := (Limits{}).Validate(); err != nil {
		t.Errorf("zero limits: %v", err)
	}
	err := Limits{MaxConns: -1, MaxBytes: -5, DialTimeout: -time.Second}.Validate()
	if err == nil {
		t.Fatal("negative limits accepted")
	}
	for _, part := range []string{"MaxConns is -1", "MaxBytes is -5", "DialTimeout is -1s", "default 256"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("%q lacks %q", err, part)
		}
	}
	if got := (Limits{}).withDefaults(); got != DefaultLimits() {
		t.Errorf("zero limits became %+v", got)
	}
}

// TestSession_Lookup_MaxLookups: past its lookup budget a job's lookups are
// refused without reaching the resolver, reported once, and counted.
func TestSession_Lookup_MaxLookups(t *testing.T) {
	res := &staticResolver{addrs: []netip.Addr{netip.MustParseAddr("1.1.1.1")}}
	var c Counters
	var reports []string
	s := NewSession(Policy{}, Limits{MaxLookups: 3}, &c, func(err error) { reports = append(reports, err.Error()) })
	defer s.Close()
	s.Resolver = res
	for i := range 3 {
		if _, err := s.Lookup(context.Background(), "ip4", fmt.Sprintf("n%d.example", i)); err != nil {
			t.Fatalf("lookup %d within the budget: %v", i, err)
		}
	}
	for range 5 {
		_, err := s.Lookup(context.Background(), "ip4", "more.example")
		var be *BudgetError
		if !errors.As(err, &be) || be.Limit != "MaxLookups" || !strings.Contains(err.Error(), "3 DNS lookups") {
			t.Fatalf("past the budget: %v", err)
		}
	}
	if res.calls != 3 {
		t.Errorf("the resolver was asked %d times, want 3", res.calls)
	}
	if len(reports) != 1 || c.BudgetExceeded.Load() != 5 {
		t.Errorf("reports %q, counted %d: want one report and five counted", reports, c.BudgetExceeded.Load())
	}
}
