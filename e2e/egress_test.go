package e2e

import (
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
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// remoteHost is a host on another machine, as jobs see it: a network
// namespace this test made, joined to this one by a veth pair, with an
// address of the test's choosing. Nothing it serves is reachable from
// outside this machine, and nothing is sent off it.
type remoteHost struct {
	t    *testing.T
	name string // the namespace (ip netns)
	IP   string // the remote's address
	Host string // this machine's end of the link
}

// mustRemoteHost makes a namespace with the address 10.213.<k>.2, reached
// from this machine through 10.213.<k>.1; removed at cleanup.
func mustRemoteHost(t *testing.T) *remoteHost {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("the ip command (iproute2) is missing: make deps installs it: %v", err)
	}
	var b [1]byte
	_, _ = rand.Read(b[:])
	k := int(b[0])%250 + 2
	r := &remoteHost{t: t, name: fmt.Sprintf("vane-e2e-%d-%d", os.Getpid(), k), IP: fmt.Sprintf("10.213.%d.2", k), Host: fmt.Sprintf("10.213.%d.1", k)}
	hostIf, nsIf := fmt.Sprintf("vh%d-%d", os.Getpid()%10000, k), fmt.Sprintf("vn%d-%d", os.Getpid()%10000, k)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", r.name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", r.name).Run() })
	run("link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", hostIf).Run() })
	run("link", "set", nsIf, "netns", r.name)
	run("addr", "add", r.Host+"/24", "dev", hostIf)
	run("link", "set", hostIf, "up")
	run("-n", r.name, "addr", "add", r.IP+"/24", "dev", nsIf)
	run("-n", r.name, "link", "set", nsIf, "up")
	run("-n", r.name, "link", "set", "lo", "up")
	return r
}

// listen opens a TCP listener inside the namespace (the socket stays
// there; only its creation needs the thread to be in it).
func (r *remoteHost) listen() net.Listener {
	r.t.Helper()
	ln, err := inNetns(r.name, func() (net.Listener, error) { return net.Listen("tcp", r.IP+":0") })
	if err != nil {
		r.t.Fatalf("cannot listen in %s: %v", r.name, err)
	}
	r.t.Cleanup(func() { ln.Close() })
	return ln
}

// inNetns runs f on a thread moved into the named namespace, then moves
// the thread back.
func inNetns[T any](name string, f func() (T, error)) (T, error) {
	var zero T
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return zero, err
	}
	defer self.Close()
	ns, err := os.Open("/run/netns/" + name)
	if err != nil {
		return zero, err
	}
	defer ns.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		return zero, err
	}
	v, ferr := f()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread cannot go back: leave it locked so that it dies
		// with this goroutine instead of serving others.
		goruntime.LockOSThread()
		return zero, err
	}
	return v, ferr
}

// countingListener counts the connections its server accepted.
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

// testServers are the remote's services: plain HTTP, HTTPS with a
// certificate of the test's CA, and a TCP echo.
type testServers struct {
	HTTP, HTTPS, Echo *countingListener
	CAFile            string
}

func (s *testServers) accepted() int64 { return s.HTTP.n.Load() + s.HTTPS.n.Load() + s.Echo.n.Load() }

// mustServe starts the three services on ln-making function listen, with
// certificates for ip.
func mustServe(t *testing.T, listen func() net.Listener, ip string) *testServers {
	t.Helper()
	caFile, cert := mustTestCA(t, ip)
	s := &testServers{HTTP: &countingListener{Listener: listen()}, HTTPS: &countingListener{Listener: listen()}, Echo: &countingListener{Listener: listen()}, CAFile: caFile}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		fmt.Fprintf(w, "hello over %s from %s", scheme, ip)
	})
	plain := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	secure := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go func() { _ = plain.Serve(s.HTTP) }()
	go func() { _ = secure.Serve(tls.NewListener(s.HTTPS, secure.TLSConfig)) }()
	go func() {
		for {
			c, err := s.Echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { plain.Close(); secure.Close(); s.Echo.Close() })
	return s
}

// mustTestCA makes a CA (written as PEM to a file, for --ca-file) and a
// server certificate it signed for ip.
func mustTestCA(t *testing.T, ip string) (string, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vane e2e test CA"},
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
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: ip},
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

func port(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }

// mustStartEgressServer starts vane with every language and extra
// flags, on a data dir the jail's user can reach.
func mustStartEgressServer(t *testing.T, args ...string) *Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "vane-e2e-egress-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return MustStartServer(t, ServerOptions{DataDir: dir, Args: append([]string{"--languages", "bash,deno,go,python3", "--workers", "2"}, args...)})
}

// egressJob runs a saved script with args and returns its result, whether
// it succeeded, and its logs.
func egressJob(t *testing.T, c *Client, path string, args map[string]any) (json.RawMessage, bool, string) {
	t.Helper()
	id := c.MustSubmit(path, args)
	res, ok := c.WaitJob(id, 2*time.Minute)
	logs := c.MustDo("GET", "/api/w/main/jobs_u/get_logs/"+id, nil, 200).Body
	return res, ok, logs
}

const bashEgressScript = `host="$1"
http_port="$2"
https_port="$3"
echo_port="$4"
echo "http: $(curl -sS --max-time 20 "http://$host:$http_port/")"
echo "https: $(curl -sS --max-time 20 "https://$host:$https_port/")"
exec 3<>"/dev/tcp/$host/$echo_port"
echo "ping from bash" >&3
read -r line <&3
exec 3>&-
echo "echo: $line"
echo done
`

const denoEgressScript = `export async function main(host: string, http_port: number, https_port: number, echo_port: number) {
  const http = await (await fetch("http://" + host + ":" + http_port + "/")).text();
  const https = await (await fetch("https://" + host + ":" + https_port + "/")).text();
  const conn = await Deno.connect({ hostname: host, port: echo_port });
  await conn.write(new TextEncoder().encode("ping from deno\n"));
  const buf = new Uint8Array(64);
  const n = await conn.read(buf);
  conn.close();
  return { http, https, echo: new TextDecoder().decode(buf.subarray(0, n ?? 0)).trim() };
}
`

// goEgressScript uses net/http's default client unchanged (the build wires
// it to vane's dialer) and vanenet.Dial (in the client module) for raw TCP.
const goEgressScript = `package inner

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/windmill-labs/windmill-go-client/vanenet"
)

func get(url string) (string, error) {
	r, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	return string(b), err
}

func main(host string, http_port int, https_port int, echo_port int) (map[string]string, error) {
	h, err := get("http://" + host + ":" + strconv.Itoa(http_port) + "/")
	if err != nil {
		return nil, err
	}
	hs, err := get("https://" + host + ":" + strconv.Itoa(https_port) + "/")
	if err != nil {
		return nil, err
	}
	conn, err := vanenet.Dial("tcp", host+":"+strconv.Itoa(echo_port))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("ping from go\n")); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return nil, err
	}
	return map[string]string{"http": h, "https": hs, "echo": strings.TrimSpace(line)}, nil
}
`

// pythonEgressScript uses urllib.request and socket unchanged: vane's
// socket and ssl modules reach the host's dialer (runtime/netfile).
const pythonEgressScript = `import socket
import urllib.request


def main(host: str, http_port: int, https_port: int, echo_port: int):
    http = urllib.request.urlopen(f"http://{host}:{http_port}/", timeout=20).read().decode()
    https = urllib.request.urlopen(f"https://{host}:{https_port}/", timeout=20).read().decode()
    with socket.create_connection((host, echo_port), timeout=20) as s:
        s.sendall(b"ping from python\n")
        echo = s.makefile("rb").readline().decode().strip()
    return {"http": http, "https": https, "echo": echo}
`

// TestEgress_AllowedHost: with the remote host admitted by --egress-allow
// and the test's CA by --ca-file, Bash (curl, /dev/tcp), Deno (fetch,
// Deno.connect), Go (net/http's default client, vanenet.Dial) and Python
// (urllib.request, socket.create_connection) jobs fetch
// over HTTP and HTTPS and talk raw TCP to it.
func TestEgress_AllowedHost(t *testing.T) {
	remote := mustRemoteHost(t)
	srv := mustServe(t, remote.listen, remote.IP)
	s := mustStartEgressServer(t, "--egress-allow", remote.IP, "--ca-file", srv.CAFile)
	c := s.Client()
	args := map[string]any{"host": remote.IP, "http_port": port(srv.HTTP), "https_port": port(srv.HTTPS), "echo_port": port(srv.Echo)}

	t.Run("bash", func(t *testing.T) {
		c.MustSaveScript("u/admin/egress_bash", "bash", bashEgressScript)
		_, ok, logs := egressJob(t, c, "u/admin/egress_bash", args)
		for _, want := range []string{"http: hello over http from " + remote.IP, "https: hello over https from " + remote.IP, "echo: ping from bash"} {
			if !strings.Contains(logs, want) {
				t.Errorf("logs lack %q:\n%s", want, logs)
			}
		}
		if !ok {
			t.Errorf("job failed:\n%s", logs)
		}
	})
	t.Run("deno", func(t *testing.T) {
		c.mustDeployed(t, "u/admin/egress_deno", "deno", denoEgressScript)
		res, ok, logs := egressJob(t, c, "u/admin/egress_deno", args)
		var got struct{ HTTP, HTTPS, Echo string }
		if !ok || json.Unmarshal(res, &got) != nil {
			t.Fatalf("job failed: %s\n%s", res, logs)
		}
		if got.HTTP != "hello over http from "+remote.IP || got.HTTPS != "hello over https from "+remote.IP || got.Echo != "ping from deno" {
			t.Fatalf("result %s", res)
		}
	})
	t.Run("python", func(t *testing.T) {
		c.mustDeployed(t, "u/admin/egress_python", "python3", pythonEgressScript)
		res, ok, logs := egressJob(t, c, "u/admin/egress_python", args)
		var got struct{ HTTP, HTTPS, Echo string }
		if !ok || json.Unmarshal(res, &got) != nil {
			t.Fatalf("job failed: %s\n%s", res, logs)
		}
		if got.HTTP != "hello over http from "+remote.IP || got.HTTPS != "hello over https from "+remote.IP || got.Echo != "ping from python" {
			t.Fatalf("result %s", res)
		}
	})
	t.Run("go", func(t *testing.T) {
		c.mustDeployed(t, "u/admin/egress_go", "go", goEgressScript)
		res, ok, logs := egressJob(t, c, "u/admin/egress_go", args)
		var got struct{ HTTP, HTTPS, Echo string }
		if !ok || json.Unmarshal(res, &got) != nil {
			t.Fatalf("job failed: %s\n%s", res, logs)
		}
		if got.HTTP != "hello over http from "+remote.IP || got.HTTPS != "hello over https from "+remote.IP || got.Echo != "ping from go" {
			t.Fatalf("result %s", res)
		}
	})
}

// TestEgress_Refused: under the default policy a private address (the
// remote host, not allowed) and this node's own address (where a service on
// the host listens) are refused, with a message naming the destination, the
// rule and the flag that would allow it; under --egress none even an
// allowed host is refused. No server sees a connection.
func TestEgress_Refused(t *testing.T) {
	remote := mustRemoteHost(t)
	srv := mustServe(t, remote.listen, remote.IP)
	// A service of the node itself, on all of its addresses.
	local := mustServe(t, func() net.Listener {
		ln, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln
	}, remote.Host)

	cases := []struct {
		name, flags, host string
		servers           *testServers
		rule, flag        string
	}{
		{"private host", "", remote.IP, srv, "private", "--egress-allow " + remote.IP + ":"},
		{"node's own address", "", remote.Host, local, "this node", "--egress-allow " + remote.Host + ":"},
		{"policy none", "--egress none --egress-allow " + remote.IP, remote.IP, srv, "none", "--egress public"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustStartEgressServer(t, strings.Fields(tc.flags)...)
			c := s.Client()
			c.MustSaveScript("u/admin/refused_bash", "bash", "host=\"$1\"\nport=\"$2\"\ncurl -sS --max-time 20 \"http://$host:$port/\" && echo reached\n")
			_, ok, logs := egressJob(t, c, "u/admin/refused_bash", map[string]any{"host": tc.host, "port": port(tc.servers.HTTP)})
			if ok || strings.Contains(logs, "reached") {
				t.Errorf("bash job reached %s:\n%s", tc.host, logs)
			}
			dst := fmt.Sprintf("%s:%d", tc.host, port(tc.servers.HTTP))
			for _, want := range []string{dst, tc.rule, tc.flag} {
				if !strings.Contains(logs, want) {
					t.Errorf("bash logs lack %q:\n%s", want, logs)
				}
			}
			c.mustDeployed(t, "u/admin/refused_deno", "deno", `export async function main(host: string, port: number) {
  const conn = await Deno.connect({ hostname: host, port });
  conn.close();
  return "reached";
}
`)
			res, ok, logs := egressJob(t, c, "u/admin/refused_deno", map[string]any{"host": tc.host, "port": port(tc.servers.Echo)})
			if ok {
				t.Errorf("deno job reached %s: %s\n%s", tc.host, res, logs)
			}
			dst = fmt.Sprintf("%s:%d", tc.host, port(tc.servers.Echo))
			for _, want := range []string{dst, tc.rule} {
				if !strings.Contains(logs, want) {
					t.Errorf("deno logs lack %q:\n%s", want, logs)
				}
			}
			c.mustDeployed(t, "u/admin/refused_go", "go", `package inner

import (
	"net/http"
	"strconv"
)

func main(host string, port int) (string, error) {
	r, err := http.Get("http://" + host + ":" + strconv.Itoa(port) + "/")
	if err != nil {
		return "", err
	}
	r.Body.Close()
	return "reached", nil
}
`)
			res, ok, logs = egressJob(t, c, "u/admin/refused_go", map[string]any{"host": tc.host, "port": port(tc.servers.HTTPS)})
			if ok {
				t.Errorf("go job reached %s: %s\n%s", tc.host, res, logs)
			}
			dst = fmt.Sprintf("%s:%d", tc.host, port(tc.servers.HTTPS))
			for _, want := range []string{dst, tc.rule} {
				if !strings.Contains(logs, want) || !strings.Contains(string(res), want) {
					t.Errorf("go logs or error lack %q: %s\n%s", want, res, logs)
				}
			}
			c.mustDeployed(t, "u/admin/refused_python", "python3", `import urllib.request


def main(host: str, port: int):
    urllib.request.urlopen(f"http://{host}:{port}/", timeout=20).read()
    return "reached"
`)
			res, ok, logs = egressJob(t, c, "u/admin/refused_python", map[string]any{"host": tc.host, "port": port(tc.servers.HTTP)})
			if ok {
				t.Errorf("python job reached %s: %s\n%s", tc.host, res, logs)
			}
			dst = fmt.Sprintf("%s:%d", tc.host, port(tc.servers.HTTP))
			for _, want := range []string{dst, tc.rule} {
				if !strings.Contains(string(res), want) {
					t.Errorf("python error lacks %q: %s\n%s", want, res, logs)
				}
			}
			if n := tc.servers.accepted(); n != 0 {
				t.Errorf("the servers accepted %d connections; a refused destination must see none", n)
			}
			if m := c.MustDo("GET", "/metrics", nil, 200).Body; !strings.Contains(m, "vane_egress_refused_total 4") {
				t.Errorf("/metrics does not count the four refusals:\n%s", grepLines(m, "vane_egress"))
			}
		})
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestEgress_WorkspaceNarrows: a workspace admin sets the workspace's egress
// mode to none, and its jobs (Bash, Python) can no longer reach a host the
// node allows, with a message saying the workspace's mode refused it and
// how to allow it; the servers see nothing. Back to the node's policy, the
// same jobs reach the host.
func TestEgress_WorkspaceNarrows(t *testing.T) {
	remote := mustRemoteHost(t)
	srv := mustServe(t, remote.listen, remote.IP)
	s := mustStartEgressServer(t, "--egress-allow", remote.IP)
	c := s.Client()
	c.MustSaveScript("u/admin/narrow_bash", "bash", "host=\"$1\"\nport=\"$2\"\ncurl -sS --max-time 20 \"http://$host:$port/\" && echo reached\n")
	c.mustDeployed(t, "u/admin/narrow_python", "python3", `import urllib.request


def main(host: str, port: int):
    return urllib.request.urlopen(f"http://{host}:{port}/", timeout=20).read().decode()
`)
	args := map[string]any{"host": remote.IP, "port": port(srv.HTTP)}

	c.MustDo("POST", "/api/w/main/workspaces/edit_egress", map[string]any{"egress": "none"}, 200)
	_, ok, logs := egressJob(t, c, "u/admin/narrow_bash", args)
	if ok || strings.Contains(logs, "reached") {
		t.Errorf("bash reached the host with the workspace's egress none:\n%s", logs)
	}
	if !strings.Contains(logs, "this workspace's egress mode is none") {
		t.Errorf("bash logs do not say the workspace refused:\n%s", logs)
	}
	res, ok, logs := egressJob(t, c, "u/admin/narrow_python", args)
	if ok || !strings.Contains(string(res), "this workspace's egress mode is none") {
		t.Errorf("python with the workspace's egress none: %s\n%s", res, logs)
	}
	if n := srv.accepted(); n != 0 {
		t.Fatalf("the server accepted %d connections from a workspace whose egress is none", n)
	}

	c.MustDo("POST", "/api/w/main/workspaces/edit_egress", map[string]any{"egress": ""}, 200)
	if _, ok, logs := egressJob(t, c, "u/admin/narrow_bash", args); !ok || !strings.Contains(logs, "reached") {
		t.Errorf("bash did not reach the host under the node's policy again:\n%s", logs)
	}
	if res, ok, logs := egressJob(t, c, "u/admin/narrow_python", args); !ok || !strings.Contains(string(res), "hello over http") {
		t.Errorf("python did not reach the host under the node's policy again: %s\n%s", res, logs)
	}
}

// TestEgress_DenoRemoteImport: a Deno script importing an https: module
// from the remote host (admitted by --egress-allow, its CA by --ca-file)
// deploys, the module fetched through vane's egress proxy and pinned in the
// lock, and its jailed job runs it from the cache. Without the allow entry
// the deployment fails naming the refusal, and the host sees nothing.
func TestEgress_DenoRemoteImport(t *testing.T) {
	remote := mustRemoteHost(t)
	caFile, cert := mustTestCA(t, remote.IP)
	ln := &countingListener{Listener: remote.listen()}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/x/greet/mod.ts" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/typescript")
			fmt.Fprint(w, "export function greet(name: string): string { return \"hello \" + name; }\n")
		})}
	go func() { _ = srv.Serve(tls.NewListener(ln, srv.TLSConfig)) }()
	t.Cleanup(func() { srv.Close() })
	code := fmt.Sprintf("import { greet } from \"https://%s:%d/x/greet/mod.ts\";\nexport function main(name: string) { return greet(name); }\n", remote.IP, port(ln))

	t.Run("allowed", func(t *testing.T) {
		s := mustStartEgressServer(t, "--egress-allow", remote.IP, "--ca-file", caFile)
		c := s.Client()
		c.mustDeployed(t, "u/admin/remote_deno", "deno", code)
		res, ok, logs := egressJob(t, c, "u/admin/remote_deno", map[string]any{"name": "vane"})
		if !ok || string(res) != `"hello vane"` {
			t.Fatalf("job: %s\n%s", res, logs)
		}
	})
	t.Run("refused", func(t *testing.T) {
		before := ln.n.Load()
		s := mustStartEgressServer(t, "--ca-file", caFile)
		c := s.Client()
		// Another URL of the module: the first subtest's fetch is in the
		// nodes' shared cache, and a cached module needs no fetch.
		uncached := strings.Replace(code, "mod.ts", "mod.ts?refused", 1)
		lock, lockErr := deploymentStatus(t, c, c.MustSaveScript("u/admin/remote_deno", "deno", uncached))
		if lock != nil || lockErr == nil || !strings.Contains(*lockErr, "egress refused: "+remote.IP) {
			t.Fatalf("deployment under a policy refusing the host: lock %v, error %v", lock, lockErr)
		}
		if n := ln.n.Load() - before; n != 0 {
			t.Fatalf("the host accepted %d connections from a refused deployment", n)
		}
	})
}
