package fetchproxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"vane/egress"
)

// mustEcho is a TCP echo server on this machine's non-loopback address
// (loopback is refused to the proxy's tunnels in every mode), counting the
// connections it accepted.
func mustEcho(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	node, ok := egress.SelfIPv4()
	if !ok {
		t.Fatal("this machine has no non-loopback IPv4 address")
	}
	ln, err := net.Listen("tcp", netip.AddrPortFrom(node, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String(), &n
}

// connect sends a CONNECT for target with auth (the Proxy-Authorization
// value, "" for none) and returns the response and the connection.
func connect(t *testing.T, p *Proxy, method, target, auth string) (*http.Response, net.Conn, *bufio.Reader) {
	t.Helper()
	u, _ := url.Parse(p.URL())
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\n", method, target, target)
	if auth != "" {
		req += "Proxy-Authorization: " + auth + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp, c, br
}

func credential(p *Proxy) string {
	u, _ := url.Parse(p.URL())
	pw, _ := u.User.Password()
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw))
}

func TestProxy_tunnel(t *testing.T) {
	echo, accepted := mustEcho(t)
	var refusals atomic.Int64
	eg := egress.NewSession(egress.Policy{Mode: egress.ModeAll}, egress.Limits{}, nil, func(error) { refusals.Add(1) })
	defer eg.Close()
	p, err := Start(context.Background(), eg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	resp, c, br := connect(t, p, "CONNECT", echo, credential(p))
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT %s: %s", echo, resp.Status)
	}
	io.WriteString(c, "ping\n")
	if line, err := br.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("through the tunnel: %q %v", line, err)
	}

	refused := []struct {
		name, method, target, auth string
		status                     int
		want                       string
	}{
		{"no credential", "CONNECT", echo, "", 407, "deployment's own"},
		{"wrong credential", "CONNECT", echo, "Basic " + base64.StdEncoding.EncodeToString([]byte("vane:guess")), 407, "deployment's own"},
		{"plain request", "GET", "http://" + echo + "/", credential(p), 405, "only https"},
		{"loopback", "CONNECT", "127.0.0.1:22", credential(p), 403, "loopback"},
		{"loopback by name", "CONNECT", "localhost:22", credential(p), 403, "loopback"},
		{"no port", "CONNECT", "example", credential(p), 403, "port"},
	}
	before := accepted.Load()
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			resp, _, _ := connect(t, p, tc.method, tc.target, tc.auth)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
				t.Fatalf("%d %q, want %d mentioning %q", resp.StatusCode, body, tc.status, tc.want)
			}
		})
	}
	if n := accepted.Load() - before; n != 0 {
		t.Fatalf("the server accepted %d connections from refused requests", n)
	}
	if refusals.Load() == 0 {
		t.Fatal("the loopback refusals were not reported to the session")
	}

	t.Run("close ends the tunnels", func(t *testing.T) {
		resp, c, br := connect(t, p, "CONNECT", echo, credential(p))
		if resp.StatusCode != 200 {
			t.Fatal(resp.Status)
		}
		p.Close()
		if _, err := br.ReadString('\n'); err == nil {
			t.Fatal("a tunnel outlived its proxy")
		}
		_ = c
	})
}

// TestProxy_policy: under the policy's refusal the tunnel is refused with
// the policy's message, and the destination sees nothing.
func TestProxy_policy(t *testing.T) {
	echo, accepted := mustEcho(t)
	self, _ := egress.SelfIPv4()
	eg := egress.NewSession(egress.Policy{Mode: egress.ModePublic, Self: []netip.Addr{self}}, egress.Limits{}, nil, nil)
	defer eg.Close()
	p, err := Start(context.Background(), eg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	resp, _, _ := connect(t, p, "CONNECT", echo, credential(p))
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || !strings.Contains(string(body), "egress refused: "+echo) {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if accepted.Load() != 0 {
		t.Fatal("a refused destination accepted a connection")
	}
}

// TestProxy_headerLimit: a request header larger than maxRequest, sent
// before any credential, is refused without being held.
func TestProxy_headerLimit(t *testing.T) {
	eg := egress.NewSession(egress.Policy{Mode: egress.ModeAll}, egress.Limits{}, nil, nil)
	defer eg.Close()
	p, err := Start(context.Background(), eg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	u, _ := url.Parse(p.URL())
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		_, _ = io.WriteString(c, "CONNECT x:1 HTTP/1.1\r\nX-Big: ")
		_, _ = c.Write(make([]byte, 4*maxRequest)) // the proxy stops reading; this write may fail
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %s", resp.Status)
	}
}
