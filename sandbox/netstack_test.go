package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// hostsEgress is an Egress that carries the job's connections to stand-in
// servers: each address the job may reach is mapped to a real listener on
// this machine's loopback, dialed for real. Anything else is refused, and
// every address asked for is recorded.
type hostsEgress struct {
	routes map[netip.AddrPort]string // what the job dials -> loopback listener
	names  map[string][]netip.Addr

	mu     sync.Mutex
	dialed []netip.AddrPort
}

func (e *hostsEgress) Dial(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	e.mu.Lock()
	e.dialed = append(e.dialed, dst)
	e.mu.Unlock()
	to, ok := e.routes[dst]
	if !ok {
		return nil, fmt.Errorf("refused %s", dst)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", to)
}

func (e *hostsEgress) Lookup(ctx context.Context, network, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, a := range e.names[strings.TrimSuffix(host, ".")] {
		if network == "ip" || (network == "ip4") == a.Is4() {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

func (e *hostsEgress) seen() []netip.AddrPort {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]netip.AddrPort(nil), e.dialed...)
}

// echoServer accepts connections on loopback and echoes each; it counts
// the connections it saw and closes them at cleanup.
func echoServer(t *testing.T) (addr string, accepted func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func runEgressJob(t *testing.T, s *Sandbox, eg Egress, script string) (string, Exit) {
	t.Helper()
	var out bytes.Buffer
	p, err := s.Start(context.Background(), &Spec{Argv: []string{"bash", "-c", script}, Env: []string{"PATH=/usr/bin:/bin"},
		Dir: MustJobDir(t, MustJobRoot(t)), Network: NetworkEgress, Egress: eg, Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), ex
}

// TestSandbox_Egress: under NetworkEgress a jailed job's TCP connections,
// to IPv4 and IPv6 addresses, and its DNS queries reach Egress, which alone
// decides: what it dials is spliced to the job byte for byte, what it
// refuses the job sees refused, and nothing else of the host is reachable.
func TestSandbox_Egress(t *testing.T) {
	echo, accepted := echoServer(t)
	v4 := netip.MustParseAddrPort("192.0.2.10:7")
	v6 := netip.MustParseAddrPort("[2001:db8::10]:7")
	eg := &hostsEgress{
		routes: map[netip.AddrPort]string{v4: echo, v6: echo},
		names:  map[string][]netip.Addr{"echo.test": {v4.Addr(), v6.Addr()}},
	}
	s := MustNew(t, Config{})
	script := `set -u
exec 3<>/dev/tcp/192.0.2.10/7; echo via-v4 >&3; head -n1 <&3; exec 3>&-
exec 3<>/dev/tcp/2001:db8::10/7; echo via-v6 >&3; head -n1 <&3; exec 3>&-
getent ahostsv4 echo.test | head -n1
getent ahostsv6 echo.test | head -n1
getent hosts nowhere.test || echo nowhere-not-found
(exec 3<>/dev/tcp/192.0.2.11/7) 2>/dev/null && echo refused-reached || echo refused-refused
`
	out, ex := runEgressJob(t, s, eg, script)
	if !ex.Success() {
		t.Fatalf("exit %v, output:\n%s", ex, out)
	}
	for _, want := range []string{"via-v4\n", "via-v6\n", "192.0.2.10 ", "2001:db8::10 ", "nowhere-not-found", "refused-refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := accepted(); n != 2 {
		t.Errorf("echo server saw %d connections, want 2 (the refused one must not reach it)", n)
	}
	seen := eg.seen()
	if len(seen) != 3 || seen[2] != netip.MustParseAddrPort("192.0.2.11:7") {
		t.Errorf("Egress was asked for %v, want the two allowed and then 192.0.2.11:7", seen)
	}
}

// TestSandbox_EgressClosedWithJob: a connection the job leaves open is
// closed on the host side when the job ends.
func TestSandbox_EgressClosedWithJob(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			got <- c
		}
	}()
	dst := netip.MustParseAddrPort("192.0.2.20:9")
	eg := &hostsEgress{routes: map[netip.AddrPort]string{dst: ln.Addr().String()}}
	s := MustNew(t, Config{})
	// The job opens the connection, says so, and exits without closing it
	// (a background child keeps it open; the jail kills it at exit).
	out, ex := runEgressJob(t, s, eg, `exec 3<>/dev/tcp/192.0.2.20/9; echo open >&3; (sleep 1000 <&3 &) ; echo done`)
	if !ex.Success() || !strings.Contains(out, "done") {
		t.Fatalf("exit %v output %q", ex, out)
	}
	c := <-got
	defer c.Close()
	b, err := io.ReadAll(c) // ends only when vane closed its side
	if err != nil && !errors.Is(err, net.ErrClosed) {
		t.Logf("read: %v", err)
	}
	if string(b) != "open\n" {
		t.Fatalf("server read %q, want %q then EOF", b, "open\n")
	}
}

// TestSandbox_EgressNotWithoutIt: without NetworkEgress the job has no
// route and no resolver answer; a spec asking for it without an Egress is
// refused.
func TestSandbox_EgressNotWithoutIt(t *testing.T) {
	s := MustNew(t, Config{})
	var out bytes.Buffer
	p, err := s.Start(context.Background(), &Spec{Argv: []string{"bash", "-c", "(exec 3<>/dev/tcp/192.0.2.10/7) 2>&1; echo rc=$?"}, Env: []string{"PATH=/usr/bin:/bin"},
		Dir: MustJobDir(t, MustJobRoot(t)), Network: NetworkAPIOnly, Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	if ex, err := p.Wait(); err != nil || !ex.Success() || !strings.Contains(out.String(), "unreachable") {
		t.Fatalf("exit %v err %v out %q: want network unreachable", ex, err, out.String())
	}
	if _, err := s.Start(context.Background(), &Spec{Argv: []string{"true"}, Dir: MustJobDir(t, MustJobRoot(t)), Network: NetworkEgress}); err == nil {
		t.Fatal("NetworkEgress without an Egress was accepted")
	}
}

// BenchmarkSandbox_Start measures a jailed `true`, from Start to Wait, with
// the API-only network and with the egress network (tun device, network
// stack), and on a sandbox that makes no device (NoDevice): what the egress
// network adds to a job that does not use it.
func BenchmarkSandbox_Start(b *testing.B) {
	for _, c := range []struct {
		name string
		net  Network
		cfg  Config
	}{
		{"APIOnly", NetworkAPIOnly, Config{}},
		{"Egress", NetworkEgress, Config{}},
		// A machine without tun devices: no jail makes one (what every job
		// paid before egress, for comparison).
		{"NoDevice", NetworkAPIOnly, Config{tunPath: "/nonexistent/tun"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := MustNew(b, c.cfg)
			root := MustJobRoot(b)
			eg := &hostsEgress{}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				dir := MustJobDir(b, root)
				start := time.Now()
				p, err := s.Start(context.Background(), &Spec{Argv: []string{"/bin/true"}, Dir: dir, Network: c.net, Egress: eg})
				if err != nil {
					b.Fatal(err)
				}
				if ex, err := p.Wait(); err != nil || !ex.Success() {
					b.Fatalf("exit %v err %v", ex, err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
		})
	}
}

// TestSandbox_EgressLazy: a job with NetworkEgress that does not use the
// network starts no network stack (the device sends nothing of its own,
// even after the pooled init waited), and one that does starts one.
func TestSandbox_EgressLazy(t *testing.T) {
	echo, _ := echoServer(t)
	v4 := netip.MustParseAddrPort("192.0.2.10:7")
	eg := &hostsEgress{routes: map[netip.AddrPort]string{v4: echo}}
	s := MustNew(t, Config{})
	// The pool's inits prepared their devices ahead of need; give them
	// the time a kernel takes to solicit routers or announce addresses.
	time.Sleep(1500 * time.Millisecond)
	before := netstacksStarted.Load()
	for range 3 {
		if out, ex := runEgressJob(t, s, eg, "echo quiet"); !ex.Success() || out != "quiet\n" {
			t.Fatalf("exit %v, output %q", ex, out)
		}
	}
	if n := netstacksStarted.Load() - before; n != 0 {
		t.Fatalf("%d network stacks started for jobs that never used the network", n)
	}
	out, ex := runEgressJob(t, s, eg, "exec 3<>/dev/tcp/192.0.2.10/7; echo ping >&3; read -r l <&3; echo \"got $l\"")
	if !ex.Success() || out != "got ping\n" {
		t.Fatalf("exit %v, output %q", ex, out)
	}
	if n := netstacksStarted.Load() - before; n != 1 {
		t.Fatalf("%d network stacks started for one job that connected, want 1", n)
	}
}

// TestSandbox_EgressUnavailable: on a machine without tun devices, jails
// still run, a job asking for egress gets vane's API only (less network,
// never more), and Status says why.
func TestSandbox_EgressUnavailable(t *testing.T) {
	s := MustNew(t, Config{tunPath: "/nonexistent/tun"})
	if st := s.Status(); !strings.Contains(st.EgressOff, "egress") {
		t.Fatalf("Status %+v: want EgressOff to say why", st)
	}
	eg := &hostsEgress{}
	out, ex := runEgressJob(t, s, eg, "(exec 3<>/dev/tcp/192.0.2.10/7) 2>&1; echo done")
	if !ex.Success() || !strings.Contains(out, "unreachable") || !strings.Contains(out, "done") {
		t.Fatalf("exit %v output %q: want the job to run with no route", ex, out)
	}
	if seen := eg.seen(); len(seen) != 0 {
		t.Fatalf("Egress was asked for %v without a tun device", seen)
	}
}

// TestSandbox_EgressDrainBounded: a job that leaves a connection full of
// data it sent to a server that never reads does not hold its Wait (and so
// its worker's slot): what it wrote is passed on for a bounded while, then
// the connection is cut.
func TestSandbox_EgressDrainBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // accepted, never read
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	dst := netip.MustParseAddrPort("192.0.2.30:9")
	eg := &hostsEgress{routes: map[netip.AddrPort]string{dst: ln.Addr().String()}}
	s := MustNew(t, Config{})
	done := make(chan struct{})
	var out string
	var ex Exit
	go func() {
		defer close(done)
		out, ex = runEgressJob(t, s, eg, `exec 3<>/dev/tcp/192.0.2.30/9; (head -c 50000000 /dev/zero >&3 &); sleep 0.5; echo exiting`)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute): // detects a hang; not a performance bound
		t.Fatal("the job's Wait did not return: a server that stops reading holds it")
	}
	if !ex.Success() || !strings.Contains(out, "exiting") {
		t.Fatalf("exit %v output %q", ex, out)
	}
}

// refusingEgress refuses every lookup the way egress.Session does under
// --egress none.
type refusingEgress struct{ hostsEgress }

type refusal struct{}

func (refusal) Error() string { return "refused" }
func (refusal) Refused() bool { return true }

func (*refusingEgress) Lookup(context.Context, string, string) ([]netip.Addr, error) {
	return nil, refusal{}
}

// TestDNSServer_HostileQueries: the job's DNS packets are parsed in vane.
// Garbage, truncated and oversized packets get no answer and no panic; a
// query gets its records, NXDOMAIN, NOTIMP or REFUSED as documented.
func TestDNSServer_HostileQueries(t *testing.T) {
	n := &netstack{ctx: context.Background(), egress: &hostsEgress{names: map[string][]netip.Addr{"db.test": {netip.MustParseAddr("192.0.2.7")}}}}
	d := &dnsServer{n: n}
	query := func(name string, typ dnsmessage.Type) []byte {
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
		_ = b.StartQuestions()
		_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET})
		q, err := b.Finish()
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	rcode := func(resp []byte) (dnsmessage.RCode, int) {
		var p dnsmessage.Parser
		h, err := p.Start(resp)
		if err != nil {
			t.Fatalf("unparsable answer: %v", err)
		}
		_ = p.SkipAllQuestions()
		answers, _ := p.AllAnswers()
		return h.RCode, len(answers)
	}
	for _, c := range []struct {
		name  string
		q     []byte
		rcode dnsmessage.RCode
		n     int
	}{
		{"A", query("db.test.", dnsmessage.TypeA), dnsmessage.RCodeSuccess, 1},
		{"AAAA of an IPv4-only name", query("db.test.", dnsmessage.TypeAAAA), dnsmessage.RCodeSuccess, 0},
		{"missing name", query("nowhere.test.", dnsmessage.TypeA), dnsmessage.RCodeNameError, 0},
		{"MX", query("db.test.", dnsmessage.TypeMX), dnsmessage.RCodeNotImplemented, 0},
	} {
		resp, err := d.answer(c.q)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if rc, n := rcode(resp); rc != c.rcode || n != c.n {
			t.Errorf("%s: rcode %v with %d answers, want %v with %d", c.name, rc, n, c.rcode, c.n)
		}
	}
	refusing := &dnsServer{n: &netstack{ctx: context.Background(), egress: &refusingEgress{}}}
	if resp, err := refusing.answer(query("db.test.", dnsmessage.TypeA)); err != nil {
		t.Fatal(err)
	} else if rc, _ := rcode(resp); rc != dnsmessage.RCodeRefused {
		t.Errorf("a refused lookup answered %v, want REFUSED", rc)
	}
	// Not queries: no answer, and no panic whatever the bytes.
	valid := query("db.test.", dnsmessage.TypeA)
	response := append([]byte(nil), valid...)
	response[2] |= 0x80 // the QR bit: a response, not a query
	bad := [][]byte{nil, {0}, valid[:5], valid[:len(valid)-3], response, bytes.Repeat([]byte{0xff}, 1500)}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, rng.IntN(600))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if len(b) > 12 && rng.IntN(2) == 0 {
			copy(b, valid[:12]) // a plausible header in front of garbage
		}
		bad = append(bad, b)
	}
	for _, b := range bad[:6] {
		if resp, err := d.answer(b); err == nil {
			t.Errorf("%x: answered %x, want no answer", b, resp)
		}
	}
	for _, b := range bad[6:] {
		_, _ = d.answer(b)
	}
}
