package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// floodDescriptors is the descriptor limit the flooded server runs with
// (prlimit); the floods open more connections than that.
const floodDescriptors = 1024

// attackerAddr is the flood's source address: another loopback address, so
// that the per-address cap tells the attacker from the clients on 127.0.0.1.
var attackerAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}

// flood opens n connections to addr from the attacker's address: every
// other one idle, the rest slowloris (a request header trickled a line at a
// time, never finished). It returns a stop func that closes them all.
func flood(tb testing.TB, addr string, n int) (opened int, stop func()) {
	tb.Helper()
	d := net.Dialer{LocalAddr: attackerAddr, Timeout: 5 * time.Second}
	var (
		mu    sync.Mutex // guards conns
		conns []net.Conn
	)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			continue // the backlog is full: the flood goes on with the rest
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		if i%2 == 1 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				fmt.Fprintf(c, "GET /api/version HTTP/1.1\r\nHost: vane\r\n")
				t := time.NewTicker(500 * time.Millisecond)
				defer t.Stop()
				for k := 0; ; k++ {
					select {
					case <-done:
						return
					case <-t.C:
					}
					if _, err := fmt.Fprintf(c, "X-Slow-%d: 1\r\n", k); err != nil {
						return // the server closed it
					}
				}
			}()
		}
	}
	return len(conns), func() {
		close(done)
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}

// mustServeNewClient makes a request on a new connection from 127.0.0.1 and
// fails the test unless it gets 200.
func mustServeNewClient(tb testing.TB, s *Server, what string) {
	tb.Helper()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest("GET", s.URL+"/api/users/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := hc.Do(req)
	if err != nil {
		tb.Fatalf("%s: a new client was not served: %v", what, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		tb.Fatalf("%s: a new client got %d: %s", what, resp.StatusCode, body)
	}
}

// metric returns the sum of the series of name in the server's /metrics.
func metric(tb testing.TB, s *Server, name string) float64 {
	tb.Helper()
	r := s.Client().MustDo("GET", "/metrics", nil, 200)
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? ([0-9.e+]+)$`)
	sum := 0.0
	for _, m := range re.FindAllStringSubmatch(r.Body, -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			tb.Fatalf("metric %s: %q: %v", name, m[0], err)
		}
		sum += v
	}
	return sum
}

// TestFlood_ConnectionsBeyondDescriptorLimit floods a server that has
// floodDescriptors descriptors with more connections than that, idle and
// slowloris, from one address: with the default caps (derived from the
// limit) the server stays up and serves new clients during and after the
// flood; with caps set above the limit (so that accept runs out of
// descriptors) it stays up and serves again once the flood ends.
func TestFlood_ConnectionsBeyondDescriptorLimit(t *testing.T) {
	wrapper := []string{"prlimit", fmt.Sprintf("--nofile=%d:%d", floodDescriptors, floodDescriptors), "--"}

	t.Run("default caps", func(t *testing.T) {
		s := MustStartServer(t, ServerOptions{Wrapper: wrapper, Args: []string{"--header-timeout", "3"}})
		addr := strings.TrimPrefix(s.URL, "http://")
		opened, stop := flood(t, addr, 3*floodDescriptors/2)
		t.Logf("flood: %d connections opened from %s", opened, attackerAddr.IP)
		for i := range 20 {
			mustServeNewClient(t, s, fmt.Sprintf("during the flood (%d)", i))
		}
		refused := metric(t, s, "vane_http_connections_refused_total")
		if refused == 0 {
			t.Errorf("no connection was refused by a cap during a flood of %d", opened)
		}
		stop()
		mustServeNewClient(t, s, "after the flood")
		t.Logf("refused by a cap: %.0f; request timeouts (slowloris): %.0f", refused,
			metric(t, s, `vane_http_requests_total{route="read_timeout",code="408"}`))
		select {
		case <-s.exited:
			t.Fatalf("vane exited during the flood:\n%s", s.Output())
		default:
		}
	})

	t.Run("caps above the descriptor limit", func(t *testing.T) {
		s := MustStartServer(t, ServerOptions{Wrapper: wrapper, Args: []string{
			"--max-connections", "100000", "--max-connections-per-ip", "100000", "--header-timeout", "3"}})
		addr := strings.TrimPrefix(s.URL, "http://")
		// A connection opened before the flood watches the server through
		// it: new ones cannot be accepted while its descriptors are gone.
		watch := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1}}
		acceptErrors := func() float64 {
			resp, err := watch.Get(s.URL + "/metrics")
			if err != nil {
				t.Fatalf("the connection opened before the flood failed: %v", err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			m := regexp.MustCompile(`(?m)^vane_http_accept_errors_total ([0-9.e+]+)$`).FindSubmatch(b)
			if m == nil {
				t.Fatalf("no vane_http_accept_errors_total in /metrics")
			}
			v, _ := strconv.ParseFloat(string(m[1]), 64)
			return v
		}
		acceptErrors()
		opened, stop := flood(t, addr, 3*floodDescriptors/2)
		t.Logf("flood: %d connections opened from %s", opened, attackerAddr.IP)
		deadline := time.Now().Add(30 * time.Second)
		for acceptErrors() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("a flood of %d connections never ran the server out of descriptors (no accept error counted)", opened)
			}
			time.Sleep(20 * time.Millisecond) // polling the server's metrics with a deadline
		}
		stop()
		mustServeNewClient(t, s, "after the flood")
		t.Logf("accept errors retried: %.0f", acceptErrors())
		select {
		case <-s.exited:
			t.Fatalf("vane exited during the flood:\n%s", s.Output())
		default:
		}
	})

	t.Run("slowloris is cut at the header timeout", func(t *testing.T) {
		s := MustStartServer(t, ServerOptions{Args: []string{"--header-timeout", "1"}})
		c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /api/version HTTP/1.1\r\nHost: vane\r\n")
		// Trickle header lines until the server answers or closes.
		go func() {
			for k := 0; ; k++ {
				time.Sleep(200 * time.Millisecond) // the slowloris' own pace
				if _, err := fmt.Fprintf(c, "X-Slow-%d: 1\r\n", k); err != nil {
					return
				}
			}
		}()
		_ = c.SetReadDeadline(time.Now().Add(60 * time.Second)) // a bound on the test, not on the server
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil && err != io.EOF {
			t.Fatalf("the server neither answered nor closed a slowloris connection: %v", err)
		}
		if line != "" && !strings.Contains(line, "408") {
			t.Fatalf("slowloris connection answered %q, want 408 or a close", line)
		}
		t.Logf("slowloris connection ended with %q", strings.TrimSpace(line))
	})
}
