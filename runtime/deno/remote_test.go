package deno

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
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

	"vane/egress"
	jobrt "vane/runtime"
)

// remoteModules serves TypeScript modules over HTTPS on this machine's
// non-loopback address (save-time fetches, like jobs, are refused
// loopback), with a certificate of a CA written to caFile.
type remoteModules struct {
	base     string // https://ip:port
	caFile   string
	requests atomic.Int64
}

func mustRemoteModules(t *testing.T, modules map[string]string) *remoteModules {
	t.Helper()
	node, ok := egress.SelfIPv4()
	if !ok {
		t.Fatal("this machine has no non-loopback IPv4 address to serve on")
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vane deno test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: node.String()},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{node.AsSlice()}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	r := &remoteModules{caFile: filepath.Join(t.TempDir(), "ca.pem")}
	if err := os.WriteFile(r.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", netip.AddrPortFrom(node, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			r.requests.Add(1)
			src, ok := modules[req.URL.Path]
			if !ok {
				http.NotFound(w, req)
				return
			}
			w.Header().Set("Content-Type", "application/typescript")
			io.WriteString(w, src)
		})}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
	r.base = "https://" + ln.Addr().String()
	return r
}

// TestDeno_Deploy_RemoteImports: a script importing an https: module (which
// imports another) deploys through the egress proxy, its lock pins the
// modules' hashes, and it runs from the cache. Another node runs it from
// the lock alone, fetching under the job's egress; a module that changed
// since is refused by the lock. Under a policy that refuses the server the
// deployment fails naming the refusal, and the server sees nothing.
func TestDeno_Deploy_RemoteImports(t *testing.T) {
	modules := map[string]string{
		"/lib/greet.ts": `import { punct } from "./punct.ts";
export function greet(name: string): string { return "hello " + name + punct; }
`,
		"/lib/punct.ts": `export const punct = "!";
`,
	}
	srv := mustRemoteModules(t, modules)
	allowAll := func(string, io.Writer) jobrt.Egress {
		return egress.NewSession(egress.Policy{Mode: egress.ModeAll}, egress.Limits{}, nil, nil)
	}
	d := MustNewDeno(t, func(c *Config) { c.CABundle = srv.caFile; c.NewEgress = allowAll })
	code := fmt.Sprintf(`import { greet } from "%s/lib/greet.ts";
export function main(name: string) { return greet(name); }
`, srv.base)
	lock, err := d.Deploy(context.Background(), &jobrt.Deployment{Workspace: "test", Path: "u/test/remote", Code: code, ResolveScript: workspace{}.resolve})
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	for _, p := range []string{"/lib/greet.ts", "/lib/punct.ts"} {
		if !strings.Contains(lock, srv.base+p) {
			t.Errorf("the lock does not pin %s: %s", p, lock)
		}
	}
	out, logs := mustRun(t, d, code, lock, map[string]any{"name": "vane"})
	assertOutcome(t, out, logs, `"hello vane!"`)

	t.Run("another node", func(t *testing.T) {
		other := MustNewDeno(t, func(c *Config) { c.CacheDir = t.TempDir(); c.CABundle = srv.caFile })
		eg := egress.NewSession(egress.Policy{Mode: egress.ModeAll}, egress.Limits{}, nil, nil)
		defer eg.Close()
		out, logs := mustRun(t, other, code, lock, map[string]any{"name": "node two"}, func(r *jobrt.Request) { r.Egress = eg })
		assertOutcome(t, out, logs, `"hello node two!"`)

		modules["/lib/punct.ts"] = "export const punct = \"?\";\n" // the server's module changed after the deployment
		third := MustNewDeno(t, func(c *Config) { c.CacheDir = t.TempDir(); c.CABundle = srv.caFile })
		out, logs = mustRun(t, third, code, lock, map[string]any{"name": "x"}, func(r *jobrt.Request) { r.Egress = eg })
		if out.Success || !strings.Contains(strings.ToLower(string(out.Result)), "integrity") {
			t.Fatalf("a module that no longer matches the lock ran: %s %s", out.Result, logs)
		}
		modules["/lib/punct.ts"] = "export const punct = \"!\";\n"
	})
	t.Run("refused", func(t *testing.T) {
		before := srv.requests.Load()
		self, _ := egress.SelfIPv4()
		public := func(_ string, logs io.Writer) jobrt.Egress { // as vane serve's: refusals to the logs
			return egress.NewSession(egress.Policy{Mode: egress.ModePublic, Self: []netip.Addr{self}}, egress.Limits{}, nil,
				func(err error) { fmt.Fprintln(logs, err) })
		}
		refused := MustNewDeno(t, func(c *Config) { c.CacheDir = t.TempDir(); c.CABundle = srv.caFile; c.NewEgress = public })
		_, err := refused.Deploy(context.Background(), &jobrt.Deployment{Workspace: "test", Path: "u/test/remote", Code: code, ResolveScript: workspace{}.resolve})
		if err == nil || !strings.Contains(err.Error(), "egress refused") || !strings.Contains(err.Error(), strings.TrimPrefix(srv.base, "https://")) {
			t.Fatalf("Deploy under a policy refusing the server: %v", err)
		}
		if n := srv.requests.Load() - before; n != 0 {
			t.Fatalf("the server saw %d requests from a refused deployment", n)
		}
	})
}

// noLookups is an egress that resolves no name (a test must not send a DNS
// query off the machine if a mirror were not applied): literal addresses
// only, counting the names it was asked.
type noLookups struct {
	*egress.Session
	asked atomic.Int64
}

func (n *noLookups) Lookup(_ context.Context, _, host string) ([]netip.Addr, error) {
	n.asked.Add(1)
	return nil, fmt.Errorf("this test resolves no name (%s)", host)
}

// TestDeno_Deploy_ImportMirror: the seeds' windmill client pattern
// (`import * as wmill from 'https://deno.land/x/windmill/index.ts'`) is
// fetched from the operator's mirror (Config.ImportMirrors), and runs; no
// name is looked up.
func TestDeno_Deploy_ImportMirror(t *testing.T) {
	srv := mustRemoteModules(t, map[string]string{
		"/mirror/deno.land/x/windmill/index.ts": `export function getWorkspace(): string { return Deno.env.get("WM_WORKSPACE") ?? ""; }
`,
	})
	var eg *noLookups
	d := MustNewDeno(t, func(c *Config) {
		c.CABundle = srv.caFile
		c.ImportMirrors = []Mirror{{From: "https://deno.land/", To: srv.base + "/mirror/deno.land/"}}
		c.NewEgress = func(string, io.Writer) jobrt.Egress {
			eg = &noLookups{Session: egress.NewSession(egress.Policy{Mode: egress.ModeAll}, egress.Limits{}, nil, nil)}
			return eg
		}
	})
	code := `import * as wmill from 'https://deno.land/x/windmill/index.ts'
export function main() { return "workspace " + wmill.getWorkspace(); }
`
	lock, err := d.Deploy(context.Background(), &jobrt.Deployment{Workspace: "test", Path: "u/test/mirrored", Code: code, ResolveScript: workspace{}.resolve})
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	if eg.asked.Load() != 0 {
		t.Fatalf("the deployment looked up %d names", eg.asked.Load())
	}
	out, logs := mustRun(t, d, code, lock, map[string]any{})
	assertOutcome(t, out, logs, `"workspace test"`)
}

// TestDeno_Deploy_HiddenRemoteFetches: remote modules that vane's scan of
// the imports does not see (a triple-slash reference, a @ts-types
// comment, a template-literal import) are not fetched from the host's
// network at save: a loopback server sees nothing.
func TestDeno_Deploy_HiddenRemoteFetches(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/typescript\r\nContent-Length: 24\r\n\r\nexport const leaked = 1;")
			c.Close()
		}
	}()
	base := "http://" + ln.Addr().String()
	allowAll := func(string, io.Writer) jobrt.Egress {
		return egress.NewSession(egress.Policy{Mode: egress.ModeAll}, egress.Limits{}, nil, nil)
	}
	d := MustNewDeno(t, func(c *Config) { c.NewEgress = allowAll })
	for name, code := range map[string]string{
		"reference":        "/// <reference types=\"" + base + "/a.d.ts\" />\nexport function main() { return 1; }\n",
		"ts-types":         "// @ts-types=\"" + base + "/b.d.ts\"\nimport * as m from \"" + base + "/b.js\";\nexport function main() { return m; }\n",
		"template literal": "export async function main() { return await import(`" + base + "/c.ts`); }\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, _ = d.Deploy(context.Background(), &jobrt.Deployment{Workspace: "test", Path: "u/test/hidden", Code: code, ResolveScript: workspace{}.resolve})
			if n := accepted.Load(); n != 0 {
				t.Fatalf("the loopback server saw %d connections from a deployment", n)
			}
		})
	}
}
