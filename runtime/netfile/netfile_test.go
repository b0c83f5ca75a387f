package netfile

import (
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// mustEcho is a TCP echo server on loopback (the dialer here is a plain
// one: the policy is the Dialer's business, tested in runtime and egress).
func mustEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func plainDial(ctx context.Context, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", address)
}

// command writes cmd (in one write, or split in two when split is set) and
// returns the whole answer.
func command(t *testing.T, f experimentalsys.File, cmd string, split bool) string {
	t.Helper()
	parts := []string{cmd}
	if split && len(cmd) > 1 {
		parts = []string{cmd[:len(cmd)/2], cmd[len(cmd)/2:]}
	}
	for _, p := range parts {
		if n, errno := f.Write([]byte(p)); errno != 0 || n != len(p) {
			t.Fatalf("write %q: %d %v", p, n, errno)
		}
	}
	var out []byte
	buf := make([]byte, 7) // small reads: the answer comes in pieces
	for {
		n, errno := f.Read(buf)
		if errno != 0 {
			t.Fatalf("read: %v", errno)
		}
		if n == 0 {
			return string(out)
		}
		out = append(out, buf[:n]...)
	}
}

func mustOpen(t *testing.T, n *Net) experimentalsys.File {
	t.Helper()
	f, errno := n.Open(experimentalsys.O_RDWR, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestNet_exchange(t *testing.T) {
	addr := mustEcho(t)
	for _, split := range []bool{false, true} {
		t.Run("split="+strconv.FormatBool(split), func(t *testing.T) {
			n := New(context.Background(), plainDial, nil)
			f := mustOpen(t, n)
			if a := command(t, f, "C 5000 "+addr+"\n", split); a != "+"+addr {
				t.Fatalf("connect: %q", a)
			}
			if a := command(t, f, "W 5000 5\nhello", split); a != "+5" {
				t.Fatalf("send: %q", a)
			}
			if a := command(t, f, "R 5000 64\n", split); a != "+hello" {
				t.Fatalf("receive: %q", a)
			}
			if a := command(t, f, "R 50 64\n", split); a[0] != KindTimeout {
				t.Fatalf("receive from a quiet peer: %q, want a timeout", a)
			}
			if a := command(t, f, "P 50\n", split); a != "+0" {
				t.Fatalf("poll of a quiet peer: %q", a)
			}
			command(t, f, "W 5000 3\nabc", split)
			if a := command(t, f, "P 5000\n", split); a != "+1" {
				t.Fatalf("poll with data coming: %q", a)
			}
			if a := command(t, f, "P 0\n", split); a != "+1" {
				t.Fatalf("poll again: %q", a)
			}
			got := ""
			for len(got) < 3 {
				a := command(t, f, "R 5000 64\n", split)
				if a == "" || a[0] != '+' {
					t.Fatalf("receive after a poll: %q", a)
				}
				got += a[1:]
			}
			if got != "abc" {
				t.Fatalf("after a poll the bytes were %q, want abc", got)
			}
			command(t, f, "W 5000 3\nxyz", split)
			if a := command(t, f, "P 5000\n", split); a != "+1" {
				t.Fatalf("poll: %q", a)
			}
			if a := command(t, f, "T 5000 0 1 x - 0\n", split); a[0] == '+' || !strings.Contains(a, "before the TLS handshake") {
				t.Fatalf("a handshake over bytes a poll read ahead: %q", a)
			}
			if a := command(t, f, "R 5000 2\n", split); a != "+xy" {
				t.Fatalf("a receive smaller than what a poll read ahead: %q", a)
			}
			if a := command(t, f, "R 5000 64\n", split); a != "+z" {
				t.Fatalf("the rest of what a poll read ahead: %q", a)
			}
			if a := command(t, f, "S 1\n", split); a != "+" {
				t.Fatalf("shutdown: %q", a)
			}
			if a := command(t, f, "R 5000 64\n", split); a != "+" {
				t.Fatalf("receive after the peer's close: %q, want end of stream", a)
			}
		})
	}
}

// TestNet_badCommands: every malformed, oversized or out-of-order command
// gets an answer that says why, and the file stays usable.
func TestNet_badCommands(t *testing.T) {
	addr := mustEcho(t)
	cases := []struct {
		name, cmd, want string
		connected       bool
	}{
		{"empty line", "\n", "empty network command", false},
		{"unknown command", "X 1 2\n", "malformed", false},
		{"missing fields", "C 100\n", "malformed", false},
		{"send before connect", "W 100 1\nx", "not connected", false},
		{"receive before connect", "R 100 1\n", "not connected", false},
		{"negative payload", "W 100 -1\n", "payload", true},
		{"payload too large", "W 100 " + strconv.Itoa(MaxChunk+1) + "\n", "payload", true},
		{"CA too large", "T 100 2 1 x - " + strconv.Itoa(maxCA+1) + "\n", "payload", true},
		{"bad verify level", "T 100 7 1 x - 0\n", "malformed", true},
		{"name check without a name", "T 100 2 1 - - 0\n", "needs a server name", true},
		{"CA that is no PEM", "T 100 2 1 x - 3\nabc", "no PEM", true},
		{"bad roots flag", "T 100 2 5 x - 0\n", "malformed", true},
		{"no CA at all", "T 100 2 0 x - 0\n", "trusts no CA", true},
		{"bad shutdown", "S 3\n", "malformed", true},
		{"second connect", "C 100 " + addr + "\n", "already connected", true},
		{"trailing bytes", "R 100 1\nextra", "followed by another", true},
		{"bad receive size", "R 100 x\n", "malformed", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := mustOpen(t, New(context.Background(), plainDial, nil))
			if tc.connected {
				if a := command(t, f, "C 5000 "+addr+"\n", false); a[0] != '+' {
					t.Fatalf("connect: %q", a)
				}
			}
			a := command(t, f, tc.cmd, false)
			if a == "" || a[0] == '+' || !strings.Contains(a, tc.want) {
				t.Fatalf("answer %q, want a failure mentioning %q", a, tc.want)
			}
			if tc.connected {
				if a := command(t, f, "W 5000 2\nok", false); a != "+2" {
					t.Fatalf("the file is unusable after a bad command: %q", a)
				}
			}
		})
	}
	t.Run("line too long", func(t *testing.T) {
		f := mustOpen(t, New(context.Background(), plainDial, nil))
		a := command(t, f, strings.Repeat("C", maxLine+1), false)
		if !strings.Contains(a, "longer than") {
			t.Fatalf("answer %q", a)
		}
	})
}

func TestNet_limits(t *testing.T) {
	addr := mustEcho(t)
	t.Run("no dialer", func(t *testing.T) {
		f := mustOpen(t, New(context.Background(), nil, nil))
		if a := command(t, f, "C 100 "+addr+"\n", false); !strings.Contains(a, "no network") {
			t.Fatalf("answer %q", a)
		}
	})
	t.Run("open files", func(t *testing.T) {
		n := New(context.Background(), plainDial, nil)
		files := make([]experimentalsys.File, MaxOpen)
		for i := range files {
			files[i] = mustOpen(t, n)
		}
		if _, errno := n.Open(experimentalsys.O_RDWR, 0); errno != experimentalsys.EAGAIN {
			t.Fatalf("open %d: %v, want EAGAIN", MaxOpen+1, errno)
		}
		files[0].Close()
		mustOpen(t, n) // a close makes room
	})
	t.Run("pending bytes", func(t *testing.T) {
		n := New(context.Background(), plainDial, nil)
		for range maxPending / maxCA {
			f := mustOpen(t, n)
			f.Write([]byte("T 100 0 1 x - " + strconv.Itoa(maxCA) + "\n"))
			f.Write(make([]byte, maxCA-100)) // incomplete: held
		}
		f := mustOpen(t, n)
		a := command(t, f, "T 100 0 1 x - 1000\n"+strings.Repeat("0", 1000), false)
		if !strings.Contains(a, "not yet complete") || n.pending > maxPending {
			t.Fatalf("answer %q, %d bytes pending", a, n.pending)
		}
	})
	t.Run("closed by Close", func(t *testing.T) {
		n := New(context.Background(), plainDial, nil)
		f := mustOpen(t, n)
		if a := command(t, f, "C 5000 "+addr+"\n", false); a[0] != '+' {
			t.Fatal(a)
		}
		n.Close()
		if a := command(t, f, "W 1000 1\nx", false); a[0] == '+' {
			t.Fatalf("a send after the job's network closed: %q", a)
		}
		g := mustOpen(t, n)
		if a := command(t, g, "C 5000 "+addr+"\n", false); a[0] == '+' {
			t.Fatalf("a connect after the job's network closed: %q", a)
		}
	})
	t.Run("job's end stops a wait", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		f := mustOpen(t, New(ctx, plainDial, nil))
		if a := command(t, f, "C 5000 "+addr+"\n", false); a[0] != '+' {
			t.Fatal(a)
		}
		time.AfterFunc(100*time.Millisecond, cancel)
		done := make(chan string, 1)
		go func() { done <- command(t, f, "R -1 10\n", false) }()
		select {
		case a := <-done:
			if a[0] != KindOther || !strings.Contains(a, "time is up") {
				t.Fatalf("answer %q", a)
			}
		case <-time.After(time.Minute):
			t.Fatal("a receive without a timeout outlived its job by a minute")
		}
	})
	t.Run("write after close", func(t *testing.T) {
		f, _ := New(context.Background(), plainDial, nil).Open(experimentalsys.O_RDWR, 0)
		f.Close()
		if _, errno := f.Write([]byte("R 1 1\n")); errno != experimentalsys.EBADF {
			t.Fatalf("errno %v", errno)
		}
	})
}
