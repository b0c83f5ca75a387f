// Package fetchproxy is an HTTP CONNECT proxy on loopback through which a
// save-time tool (deno install fetching a script's https: and jsr:
// imports) reaches the outside under vane's egress policy: every tunnel is
// dialed with runtime.DialEgress, so a name is resolved by the policy's
// resolver, each address is checked, loopback is refused in every mode, and
// a refusal is reported like a job's. Without it the tool would reach
// whatever the host can, the cloud metadata endpoint and vane's own ports
// included, from a URL any script author writes.
//
// The proxy asks for a credential (a random token in the proxy URL), so
// that another process of the host cannot borrow it; it serves CONNECT
// only (plain http: imports are refused before it is used).
package fetchproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jobrt "vane/runtime"
)

const (
	// dialTimeout bounds one tunnel's dial, and the wait for its request.
	dialTimeout = 30 * time.Second
	// maxRequest bounds a request's line and header (read before the
	// credential is checked).
	maxRequest = 16 << 10
)

// Proxy is one deployment's proxy. Close stops it and its tunnels.
type Proxy struct {
	ln    net.Listener
	eg    jobrt.Egress
	token string
	ctx   context.Context
	stop  context.CancelFunc

	mu    sync.Mutex // guards conns
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// Start listens on loopback and serves tunnels dialed through eg until
// Close or ctx's end.
func Start(ctx context.Context, eg jobrt.Egress) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cannot start the fetch proxy: %w", err)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		ln.Close()
		return nil, fmt.Errorf("cannot start the fetch proxy: %w", err)
	}
	p := &Proxy{ln: ln, eg: eg, token: hex.EncodeToString(b[:]), conns: map[net.Conn]struct{}{}}
	p.ctx, p.stop = context.WithCancel(ctx)
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// URL is the proxy's URL, with its credential, for HTTPS_PROXY.
func (p *Proxy) URL() string {
	return (&url.URL{Scheme: "http", User: url.UserPassword("vane", p.token), Host: p.ln.Addr().String()}).String()
}

// Close stops the proxy and closes its tunnels; it waits for them.
func (p *Proxy) Close() {
	p.stop()
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// track records c for Close; false once the proxy is closing.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			_ = c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			defer c.Close()
			p.tunnel(c)
		}()
	}
}

// peekBuffered returns what br holds unread.
func peekBuffered(br *bufio.Reader) []byte {
	b, _ := br.Peek(br.Buffered())
	return b
}

// answer writes a response of status with msg as its body.
func answer(c net.Conn, status int, msg string) {
	_, _ = fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(msg), msg)
}

// authorized reports whether req carries the proxy's credential.
func (p *Proxy) authorized(req *http.Request) bool {
	h := req.Header.Get("Proxy-Authorization")
	raw, ok := strings.CutPrefix(h, "Basic ")
	if !ok {
		return false
	}
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(raw))
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got, []byte("vane:"+p.token)) == 1
}

func (p *Proxy) tunnel(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(dialTimeout))
	head := &io.LimitedReader{R: c, N: maxRequest}
	br := bufio.NewReaderSize(head, 4<<10)
	req, err := http.ReadRequest(br)
	if err != nil {
		if head.N == 0 {
			answer(c, http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("vane: a request's header is at most %d bytes", maxRequest))
			return
		}
		answer(c, http.StatusBadRequest, "vane: "+err.Error())
		return
	}
	// What the client sent after the request: the buffered rest, then the
	// connection itself (the limit was for the header).
	rest := io.MultiReader(bytes.NewReader(peekBuffered(br)), c)
	_ = c.SetReadDeadline(time.Time{})
	switch {
	case !p.authorized(req):
		answer(c, http.StatusProxyAuthRequired, "vane: this proxy is a deployment's own")
		return
	case req.Method != http.MethodConnect:
		answer(c, http.StatusMethodNotAllowed, "vane: only https: imports are fetched (CONNECT), not "+req.Method)
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, dialTimeout)
	up, err := jobrt.DialEgress(ctx, p.eg, req.Host)
	cancel()
	if err != nil {
		answer(c, http.StatusForbidden, err.Error())
		return
	}
	defer up.Close()
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(up, rest)
		if cw, ok := up.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	_, _ = io.Copy(c, up)
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	<-done
}
