package e2e

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDurability_Kill9DuringWebhookBurst kills the server with SIGKILL while
// 32 clients post webhooks; after a restart every job whose 201 was received
// must exist, queued, running or completed.
func TestDurability_Kill9DuringWebhookBurst(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{Args: []string{"--workers", "1"}})
	c := srv.Client()
	c.MustSaveScript("u/admin/noop", "bash", "echo ok\n")

	const clients = 32
	var (
		mu    sync.Mutex // guards acked
		acked []string
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	url := srv.URL + "/api/w/main/jobs/run/p/u/admin/noop"
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				req, _ := http.NewRequest("POST", url, bytes.NewReader([]byte(`{"x":1}`)))
				req.Header.Set("Authorization", "Bearer "+adminToken)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				body, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				if rerr == nil && resp.StatusCode == 201 {
					mu.Lock()
					acked = append(acked, string(body))
					mu.Unlock()
				}
			}
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 2000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d webhooks acknowledged within 60s", n)
		}
		time.Sleep(5 * time.Millisecond) // polling the acknowledged count with a deadline
	}
	srv.Kill9()
	stop.Store(true)
	wg.Wait()

	srv.Restart()
	c = srv.Client()
	mu.Lock()
	ids := append([]string(nil), acked...)
	mu.Unlock()
	t.Logf("%d webhooks acknowledged before kill -9", len(ids))
	missing := 0
	for _, id := range ids {
		r := c.Do("GET", "/api/w/main/jobs_u/get/"+id+"?no_logs=true", nil)
		if r.Status != 200 {
			missing++
			if missing <= 5 {
				t.Errorf("acknowledged job %s: status %d after restart: %s", id, r.Status, r.Body)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged jobs lost", missing, len(ids))
	}
}
