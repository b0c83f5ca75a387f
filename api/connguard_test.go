package api

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestConnGuard_Caps: over the per-address cap a connection is answered 503
// and closed; a closed admitted connection frees its slot; the total cap
// holds across addresses; admitted connections keep their socket reachable.
func TestConnGuard_Caps(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics()
	g := newConnGuard(ln, 3, 2, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer g.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := g.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func(from string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	refusedLine := func(c net.Conn) string {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	mustAccept := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no connection accepted")
			return nil
		}
	}

	dial("127.0.0.1")
	a1 := mustAccept()
	dial("127.0.0.1")
	mustAccept()
	if line := refusedLine(dial("127.0.0.1")); !strings.Contains(line, "503") {
		t.Fatalf("third connection from one address: %q, want a 503", line)
	}
	if n := g.refusedPerIP.Load(); n != 1 {
		t.Fatalf("per-address refusals: %d, want 1", n)
	}
	// Another address gets the last slot of the total, then the total is full.
	dial("127.0.0.3")
	mustAccept()
	if line := refusedLine(dial("127.0.0.4")); !strings.Contains(line, "503") {
		t.Fatalf("fourth connection: %q, want a 503", line)
	}
	if n := g.refusedTotal.Load(); n != 1 {
		t.Fatalf("total refusals: %d, want 1", n)
	}
	// The disconnect watch of run_wait_result needs the socket.
	if _, ok := a1.(syscall.Conn); !ok {
		t.Fatalf("an admitted connection hides its socket")
	}
	// Closing one frees a slot for its address.
	a1.Close()
	a1.Close() // counted out once
	dial("127.0.0.1")
	mustAccept()
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	if open != 3 {
		t.Fatalf("open connections: %d, want 3", open)
	}
}
