package python

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"vane"
	"vane/egress"
	jobrt "vane/runtime"
)

// netServers are a test's services on this machine's non-loopback address
// (a job's loopback is refused): HTTP, HTTPS with a certificate of the
// test's CA, a TCP echo, and a server that accepts and stays silent.
type netServers struct {
	host                      string
	http, https, echo, silent *countingListener
	caFile                    string
}

type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func (l *countingListener) port() int { return l.Addr().(*net.TCPAddr).Port }

// bigBody is what /big serves: larger than one chunk through the host.
var bigBody = strings.Repeat("0123456789abcdef", 20<<10)

func mustNetServers(t *testing.T) *netServers {
	t.Helper()
	node, ok := egress.SelfIPv4()
	if !ok {
		t.Fatal("this machine has no non-loopback IPv4 address to listen on")
	}
	listen := func() *countingListener {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(node, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return &countingListener{Listener: ln}
	}
	caFile, cert := mustTestCA(t, node.String())
	s := &netServers{host: node.String(), http: listen(), https: listen(), echo: listen(), silent: listen(), caFile: caFile}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			io.WriteString(w, bigBody)
			return
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		fmt.Fprintf(w, "hello over %s", scheme)
	})
	plain := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	secure := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go func() { _ = plain.Serve(s.http) }()
	go func() { _ = secure.Serve(tls.NewListener(s.https, secure.TLSConfig)) }()
	serve := func(l net.Listener, f func(net.Conn)) {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(30 * time.Second))
					f(c)
				}()
			}
		}()
	}
	serve(s.echo, func(c net.Conn) { _, _ = io.Copy(c, c) })
	serve(s.silent, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	t.Cleanup(func() { plain.Close(); secure.Close() })
	return s
}

// mustTestCA makes a CA, written as PEM to a file, and a server
// certificate it signed for ip.
func mustTestCA(t *testing.T, ip string) (string, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vane python test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: ip, Organization: []string{"vane tests"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)}, DNSNames: []string{"remote.test"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return f, tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}
}

// networkScript uses the network the way scripts do: urllib.request,
// http.client, socket.create_connection and ssl, unchanged.
const networkScript = `import http.client
import socket
import ssl
import urllib.request


def main(host: str, http_port: int, https_port: int, echo_port: int, silent_port: int):
    out = {}
    out["http"] = urllib.request.urlopen(f"http://{host}:{http_port}/", timeout=20).read().decode()
    out["https"] = urllib.request.urlopen(f"https://{host}:{https_port}/", timeout=20).read().decode()
    c = http.client.HTTPSConnection(host, https_port, timeout=20)
    c.request("GET", "/big")
    r = c.getresponse()
    out["big"] = len(r.read())
    c.request("GET", "/")  # the same connection, kept alive
    out["again"] = c.getresponse().read().decode()
    out["peer_cn"] = dict(x[0] for x in c.sock.getpeercert()["subject"])["commonName"]
    out["tls"] = c.sock.version()
    c.close()
    with socket.create_connection((host, echo_port), timeout=20) as s:
        s.sendall(b"ping from python\n")
        out["echo"] = s.makefile("rb").readline().decode().strip()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(0.3)
    s.connect((host, silent_port))
    try:
        s.recv(10)
        out["timeout"] = "no"
    except socket.timeout:
        out["timeout"] = "yes"
    s.close()
    raw = socket.create_connection((host, https_port), timeout=20)
    try:
        ssl.create_default_context().wrap_socket(raw, server_hostname="other.test")
        out["wrong_name"] = "accepted"
    except ssl.SSLCertVerificationError as e:
        out["wrong_name"] = "refused: " + str(e)
    raw = socket.create_connection((host, https_port), timeout=20)
    with ssl._create_unverified_context().wrap_socket(raw, server_hostname="other.test") as t:
        out["unverified"] = t.version() is not None
    return out
`

// TestExecutor_Run_network: a Python job fetches over HTTP and HTTPS (the
// test's CA in the executor's bundle), keeps a connection alive, talks raw
// TCP, times out on a silent server, and is refused a certificate for
// another name: in this process and in worker processes, whose connections
// the parent dials and relays.
func TestExecutor_Run_network(t *testing.T) {
	srv := mustNetServers(t)
	executors := map[string]*Executor{
		"in process":        mustNewExecutorConfig(t, Config{CABundle: srv.caFile}),
		"in worker process": mustNewExecutorConfig(t, Config{CABundle: srv.caFile, WorkerCommand: []string{os.Args[0]}, WorkerEnv: []string{workerEnvVar + "=1"}}),
	}
	args, _ := json.Marshal(map[string]any{"host": srv.host, "http_port": srv.http.port(), "https_port": srv.https.port(),
		"echo_port": srv.echo.port(), "silent_port": srv.silent.port()})
	for name, e := range executors {
		t.Run(name, func(t *testing.T) {
			eg := egress.NewSession(egress.Policy{Mode: egress.ModeAll}, egress.Limits{}, nil, nil)
			defer eg.Close()
			var logs syncBuffer
			out, err := e.Run(context.Background(), &jobrt.Request{Job: &vane.Job{}, Code: networkScript, Args: args, Logs: &logs, Egress: eg,
				Limits: jobrt.Limits{Timeout: time.Minute}})
			if err != nil || !out.Success {
				t.Fatalf("job failed: %v %s\n%s", err, out.Result, logs.String())
			}
			var got struct {
				HTTP, HTTPS, Again, Echo, Timeout, TLS string
				Big                                    int
				PeerCN                                 string `json:"peer_cn"`
				WrongName                              string `json:"wrong_name"`
				Unverified                             bool
			}
			if err := json.Unmarshal(out.Result, &got); err != nil {
				t.Fatal(err)
			}
			if got.HTTP != "hello over http" || got.HTTPS != "hello over https" || got.Again != "hello over https" ||
				got.Big != len(bigBody) || got.Echo != "ping from python" || got.PeerCN != srv.host || got.TLS != "TLSv1.3" {
				t.Errorf("result %s", out.Result)
			}
			if got.Timeout != "yes" {
				t.Errorf("a receive from a silent server with a 0.3 s timeout did not time out: %s", out.Result)
			}
			if !strings.Contains(got.WrongName, "refused") || !strings.Contains(got.WrongName, "other.test") || !got.Unverified {
				t.Errorf("a certificate for another name: %q; unverified context: %v", got.WrongName, got.Unverified)
			}
		})
	}
}

// TestExecutor_Run_networkRefused: a job without egress is told it has no
// network; loopback is refused even under --egress all; the default
// policy refuses this node's own address with the rule and the flag. No
// server sees a connection.
func TestExecutor_Run_networkRefused(t *testing.T) {
	srv := mustNetServers(t)
	lo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	loop := &countingListener{Listener: lo}
	go func() {
		for {
			c, err := loop.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	code := `import socket


def main(host: str, port: int):
    try:
        socket.create_connection((host, port), timeout=5).close()
        return "reached"
    except OSError as e:
        return type(e).__name__ + ": " + str(e)
`
	self, _ := egress.SelfIPv4()
	public := egress.Policy{Mode: egress.ModePublic, Self: []netip.Addr{self}}
	cases := []struct {
		name   string
		policy *egress.Policy // nil: no egress
		host   string
		port   int
		want   []string
	}{
		{"no egress", nil, srv.host, srv.echo.port(), []string{"OSError", "no network"}},
		{"loopback under all", &egress.Policy{Mode: egress.ModeAll}, "127.0.0.1", loop.port(), []string{"PermissionError", "loopback"}},
		{"loopback by name under all", &egress.Policy{Mode: egress.ModeAll}, "localhost", loop.port(), []string{"PermissionError", "loopback"}},
		{"mapped loopback under all", &egress.Policy{Mode: egress.ModeAll}, "::ffff:127.0.0.1", loop.port(), []string{"PermissionError", "loopback"}},
		{"node's address under public", &public, srv.host, srv.echo.port(), []string{"PermissionError", srv.host, "--egress-allow"}},
	}
	executors := map[string]*Executor{
		"in process":        mustNewExecutorConfig(t, Config{}),
		"in worker process": mustNewExecutorConfig(t, Config{WorkerCommand: []string{os.Args[0]}, WorkerEnv: []string{workerEnvVar + "=1"}}),
	}
	for name, e := range executors {
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				req := &jobrt.Request{Job: &vane.Job{}, Code: code, Logs: io.Discard, Limits: jobrt.Limits{Timeout: time.Minute}}
				req.Args, _ = json.Marshal(map[string]any{"host": tc.host, "port": tc.port})
				var reported atomic.Int64
				if tc.policy != nil {
					eg := egress.NewSession(*tc.policy, egress.Limits{}, nil, func(error) { reported.Add(1) })
					defer eg.Close()
					req.Egress = eg
				}
				out, err := e.Run(context.Background(), req)
				if err != nil || !out.Success {
					t.Fatalf("job failed: %v %s", err, out.Result)
				}
				if tc.policy != nil && reported.Load() == 0 {
					t.Errorf("the refusal was not reported to the job's log")
				}
				for _, w := range tc.want {
					if !strings.Contains(string(out.Result), w) {
						t.Errorf("result %s lacks %q", out.Result, w)
					}
				}
			})
		}
	}
	if n := srv.echo.n.Load() + loop.n.Load(); n != 0 {
		t.Fatalf("refused servers accepted %d connections", n)
	}
}

// TestExecutor_Run_networkEdges: a peer's reset is the job's
// ConnectionResetError (not an end of stream, which would truncate a
// response read until close); a closed socket frees its egress slot at once
// (four connections in turn under a limit of two open, to a server that
// never closes); a context given its own CA trusts it, and a context given
// none trusts nothing, as in CPython. In process and in worker processes.
func TestExecutor_Run_networkEdges(t *testing.T) {
	srv := mustNetServers(t)
	node, _ := egress.SelfIPv4()
	listen := func(f func(net.Conn)) int {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(node, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go f(c)
			}
		}()
		return ln.Addr().(*net.TCPAddr).Port
	}
	resetPort := listen(func(c net.Conn) {
		_, _ = c.Write([]byte("hello"))
		time.Sleep(100 * time.Millisecond)
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close() // a reset
	})
	holdPort := listen(func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(time.Minute))
		_, _ = io.Copy(io.Discard, c) // never closes first
		time.Sleep(time.Minute)
		c.Close()
	})
	ca, err := os.ReadFile(srv.caFile)
	if err != nil {
		t.Fatal(err)
	}
	code := `import socket
import ssl


def main(host: str, reset_port: int, hold_port: int, https_port: int, ca: str):
    out = {}
    s = socket.create_connection((host, reset_port), timeout=10)
    data = b""
    try:
        while True:
            b = s.recv(100)
            if not b:
                out["reset"] = "end of stream after " + repr(data)
                break
            data += b
    except ConnectionResetError as e:
        out["reset"] = "reset: " + str(e)
    s.close()
    for _ in range(4):
        socket.create_connection((host, hold_port), timeout=10).close()
    out["cycles"] = 4
    ctx = ssl.create_default_context(cadata=ca)
    with socket.create_connection((host, https_port), timeout=10) as r:
        with ctx.wrap_socket(r, server_hostname=host) as t:
            out["own_ca"] = t.version()
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    r = socket.create_connection((host, https_port), timeout=10)
    try:
        bare.wrap_socket(r, server_hostname=host)
        out["no_ca"] = "accepted"
    except ssl.SSLError as e:
        out["no_ca"] = "refused: " + str(e)
    return out
`
	args, _ := json.Marshal(map[string]any{"host": srv.host, "reset_port": resetPort, "hold_port": holdPort,
		"https_port": srv.https.port(), "ca": string(ca)})
	executors := map[string]*Executor{
		"in process":        mustNewExecutorConfig(t, Config{}),
		"in worker process": mustNewExecutorConfig(t, Config{WorkerCommand: []string{os.Args[0]}, WorkerEnv: []string{workerEnvVar + "=1"}}),
	}
	for name, e := range executors {
		t.Run(name, func(t *testing.T) {
			eg := egress.NewSession(egress.Policy{Mode: egress.ModeAll}, egress.Limits{MaxConcurrent: 2}, nil, nil)
			defer eg.Close()
			var logs syncBuffer
			out, err := e.Run(context.Background(), &jobrt.Request{Job: &vane.Job{}, Code: code, Args: args, Logs: &logs, Egress: eg,
				Limits: jobrt.Limits{Timeout: time.Minute}})
			if err != nil || !out.Success {
				t.Fatalf("job failed: %v %s\n%s", err, out.Result, logs.String())
			}
			var got struct {
				Reset  string
				Cycles int
				OwnCA  string `json:"own_ca"`
				NoCA   string `json:"no_ca"`
			}
			if err := json.Unmarshal(out.Result, &got); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got.Reset, "reset") || got.Cycles != 4 || got.OwnCA == "" || !strings.Contains(got.NoCA, "refused") {
				t.Fatalf("result %s", out.Result)
			}
		})
	}
}

// TestExecutor_Run_networkOpenLimit: a job holding netfile.MaxOpen
// sockets is told why it cannot open one more, and can once it closes one.
func TestExecutor_Run_networkOpenLimit(t *testing.T) {
	srv := mustNetServers(t)
	e := MustNewExecutor(t)
	code := `import socket


def main(host: str, port: int):
    held = [socket.create_connection((host, port), timeout=10) for _ in range(64)]
    try:
        socket.create_connection((host, port), timeout=10)
        return "opened a 65th"
    except OSError as e:
        refused = str(e)
    held.pop().close()
    socket.create_connection((host, port), timeout=10).close()
    return refused
`
	eg := egress.NewSession(egress.Policy{Mode: egress.ModeAll}, egress.Limits{}, nil, nil)
	defer eg.Close()
	args, _ := json.Marshal(map[string]any{"host": srv.host, "port": srv.echo.port()})
	out, err := e.Run(context.Background(), &jobrt.Request{Job: &vane.Job{}, Code: code, Args: args, Logs: io.Discard, Egress: eg,
		Limits: jobrt.Limits{Timeout: time.Minute}})
	if err != nil || !out.Success || !strings.Contains(string(out.Result), "at most 64 connections") {
		t.Fatalf("%v %s", err, out.Result)
	}
}

// TestExecutor_Run_networkReadiness: select, poll and selectors say a vane
// socket is readable only when a recv would not block (an idle socket is
// not; one with data is, and the data is all there), always writable; and
// asyncio streams work over them. In process and in worker processes.
func TestExecutor_Run_networkReadiness(t *testing.T) {
	srv := mustNetServers(t)
	code := `import asyncio
import select
import selectors
import socket


async def main(host: str, echo_port: int, silent_port: int):
    out = {}
    s = socket.create_connection((host, silent_port), timeout=10)
    r, _, _ = select.select([s], [], [], 0.2)
    out["idle_select"] = len(r)
    p = select.poll()
    p.register(s, select.POLLIN)
    out["idle_poll"] = len(p.poll(100))
    _, w, _ = select.select([], [s], [], 0)
    out["writable"] = len(w)
    e = socket.create_connection((host, echo_port), timeout=10)
    e.sendall(b"ping")
    r, _, _ = select.select([s, e.fileno()], [], [], 10)
    out["echo_select"] = r == [e.fileno()]
    out["echo"] = e.recv(10).decode()
    sel = selectors.DefaultSelector()
    sel.register(e, selectors.EVENT_READ)
    e.sendall(b"again")
    out["selector"] = len(sel.select(10))
    got = b""
    while len(got) < 5:
        got += e.recv(10)
    out["again"] = got.decode()
    reader, writer = await asyncio.open_connection(host, echo_port)
    writer.write(b"hello async\n")
    await writer.drain()
    out["async"] = (await asyncio.wait_for(reader.readline(), 10)).decode().strip()
    writer.close()
    # An idle asyncio read waits in select, not in a loop of recvs.
    calls = [0]
    recv = socket.socket.recv

    def counting(self, *args):
        calls[0] += 1
        return recv(self, *args)

    socket.socket.recv = counting
    idle_reader, idle_writer = await asyncio.open_connection(host, silent_port)
    try:
        await asyncio.wait_for(idle_reader.read(10), 0.5)
    except asyncio.TimeoutError:
        pass
    socket.socket.recv = recv
    idle_writer.close()
    out["idle_recvs"] = calls[0]
    return out
`
	executors := map[string]*Executor{
		"in process":        mustNewExecutorConfig(t, Config{}),
		"in worker process": mustNewExecutorConfig(t, Config{WorkerCommand: []string{os.Args[0]}, WorkerEnv: []string{workerEnvVar + "=1"}}),
	}
	args, _ := json.Marshal(map[string]any{"host": srv.host, "echo_port": srv.echo.port(), "silent_port": srv.silent.port()})
	for name, e := range executors {
		t.Run(name, func(t *testing.T) {
			eg := egress.NewSession(egress.Policy{Mode: egress.ModeAll}, egress.Limits{}, nil, nil)
			defer eg.Close()
			var logs syncBuffer
			out, err := e.Run(context.Background(), &jobrt.Request{Job: &vane.Job{}, Code: code, Args: args, Logs: &logs, Egress: eg,
				Limits: jobrt.Limits{Timeout: time.Minute}})
			if err != nil || !out.Success {
				t.Fatalf("job failed: %v %s\n%s", err, out.Result, logs.String())
			}
			var got struct {
				IdleSelect int  `json:"idle_select"`
				IdlePoll   int  `json:"idle_poll"`
				Writable   int  `json:"writable"`
				EchoSelect bool `json:"echo_select"`
				Echo       string
				Selector   int
				Again      string
				Async      string
				IdleRecvs  int `json:"idle_recvs"`
			}
			if err := json.Unmarshal(out.Result, &got); err != nil {
				t.Fatal(err)
			}
			if got.IdleSelect != 0 || got.IdlePoll != 0 || got.Writable != 1 || !got.EchoSelect || !strings.HasPrefix("ping", got.Echo) ||
				got.Selector != 1 || got.Again != "again" || got.Async != "hello async" || got.IdleRecvs > 10 {
				t.Fatalf("result %s", out.Result)
			}
		})
	}
}
