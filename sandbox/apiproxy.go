package sandbox

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
)

// apiProxy forwards connections from a unix socket (reached by the jails'
// forwarders) to vane's API over TCP.
type apiProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex // guards conns
	conns map[net.Conn]struct{}
}

func newAPIProxy(sock, target string) (*apiProxy, error) {
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on api socket: %w", err)
	}
	// Jails run as another uid: the socket must be connectable by it.
	if err := os.Chmod(sock, 0o666); err != nil {
		ln.Close()
		return nil, fmt.Errorf("cannot chmod api socket: %w", err)
	}
	p := &apiProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *apiProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				return
			}
			p.track(c, u, true)
			pipeBoth(c, u)
			p.track(c, u, false)
		}()
	}
}

func (p *apiProxy) track(a, b net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[a], p.conns[b] = struct{}{}, struct{}{}
	} else {
		delete(p.conns, a)
		delete(p.conns, b)
	}
}

// Close stops accepting, closes open connections and waits for the copiers.
func (p *apiProxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// pipeBoth copies a<->b until both directions end, then closes both.
func pipeBoth(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
	a.Close()
	b.Close()
}
