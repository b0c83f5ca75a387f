package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

const helloScript = `name="$1"
greeting="${2:-hello}"
echo "$greeting $name"
`

// TestJobs_RunByPathAndHash saves a Bash script and runs it by webhook, by
// path and by hash, and synchronously.
func TestJobs_RunByPathAndHash(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	hash := c.MustSaveScript("u/admin/hello", "bash", helloScript)
	if len(hash) != 16 {
		t.Fatalf("scripts/create answered %q, want a 16-char hash", hash)
	}

	id := c.MustDo("POST", "/api/w/main/jobs/run/p/u/admin/hello", map[string]any{"name": "path"}, 201).Body
	if res, ok := c.WaitJob(id, 30*time.Second); !ok || string(res) != `"hello path"` {
		t.Fatalf("run/p: result %s success %v, want \"hello path\"", res, ok)
	}
	id = c.MustDo("POST", "/api/w/main/jobs/run/h/"+hash, map[string]any{"name": "hash", "greeting": "hi"}, 201).Body
	if res, ok := c.WaitJob(id, 30*time.Second); !ok || string(res) != `"hi hash"` {
		t.Fatalf("run/h: result %s success %v, want \"hi hash\"", res, ok)
	}

	r := c.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/hello", map[string]any{"name": "sync"}, 200)
	if r.Body != `"hello sync"` {
		t.Fatalf("run_wait_result: body %q, want \"hello sync\"", r.Body)
	}
	payload := base64.StdEncoding.EncodeToString([]byte(`{"name":"get"}`))
	r = c.MustDo("GET", "/api/w/main/jobs/run_wait_result/p/u/admin/hello?payload="+payload, nil, 200)
	if r.Body != `"hello get"` {
		t.Fatalf("run_wait_result GET: body %q, want \"hello get\"", r.Body)
	}

	// A job_id given twice for a different job is refused with 400; the
	// same submission retried (after an indeterminate answer) gets its 201
	// again without a second job (cluster.IdempotentJobs).
	jobID := "0193a5f0-0000-7000-8000-000000000001"
	c.MustDo("POST", "/api/w/main/jobs/run/p/u/admin/hello?job_id="+jobID, map[string]any{"name": "dup"}, 201)
	if r := c.Do("POST", "/api/w/main/jobs/run/p/u/admin/hello?job_id="+jobID, map[string]any{"name": "other"}); r.Status != 400 {
		t.Fatalf("duplicate job_id: status %d, want 400; body %q", r.Status, r.Body)
	}
	if r := c.MustDo("POST", "/api/w/main/jobs/run/p/u/admin/hello?job_id="+jobID, map[string]any{"name": "dup"}, 201); r.Body != jobID {
		t.Fatalf("retried submission: body %q, want %s", r.Body, jobID)
	}
	if res, ok := c.WaitJob(jobID, 30*time.Second); !ok || string(res) != `"hello dup"` {
		t.Fatalf("job %s: result %s success %v", jobID, res, ok)
	}

	// The job reads: the Job, its logs and the listings.
	var job struct {
		Type       string `json:"type"`
		ID         string `json:"id"`
		Success    bool   `json:"success"`
		ScriptPath string `json:"script_path"`
		Logs       string `json:"logs"`
	}
	c.MustDo("GET", "/api/w/main/jobs_u/get/"+id, nil, 200).JSON(t, &job)
	if job.Type != "CompletedJob" || job.ID != id || !job.Success || job.ScriptPath != "u/admin/hello" {
		t.Fatalf("jobs_u/get: %+v", job)
	}
	if logs := c.MustDo("GET", "/api/w/main/jobs_u/get_logs/"+id, nil, 200).Body; !strings.Contains(logs, "hi hash") {
		t.Fatalf("get_logs: %q does not contain the script's output", logs)
	}
	if res := c.MustDo("GET", "/api/w/main/jobs_u/completed/get_result/"+id, nil, 200).Body; res != `"hi hash"` {
		t.Fatalf("get_result: %q", res)
	}
	var completed []struct {
		ID string `json:"id"`
	}
	c.MustDo("GET", "/api/w/main/jobs/completed/list?per_page=100", nil, 200).JSON(t, &completed)
	if len(completed) != 5 {
		t.Fatalf("completed/list has %d jobs, want 5", len(completed))
	}
}

// TestJobs_FailureIs422 checks that a failing job gives 422 with its error.
func TestJobs_FailureIs422(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	c.MustSaveScript("u/admin/fail", "bash", "echo 'something broke' >&2\nexit 3\n")
	r := c.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/fail", map[string]any{}, 422)
	var res struct {
		Error struct {
			Message string `json:"message"`
			Name    string `json:"name"`
		} `json:"error"`
	}
	r.JSON(t, &res)
	if res.Error.Message == "" {
		t.Fatalf("422 body has no error message: %q", r.Body)
	}
}

// TestJobs_StatusCodeShaping checks windmill_status_code,
// windmill_content_type and windmill_headers, and 204 without result.
func TestJobs_StatusCodeShaping(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	tests := []struct {
		name       string
		result     string
		wantStatus int
		wantBody   string
		wantHeader [2]string
	}{
		{name: "status and result", result: `{"windmill_status_code":201,"result":{"Hello":"World"}}`,
			wantStatus: 201, wantBody: `{"Hello":"World"}`},
		{name: "content type unquotes a string", result: `{"windmill_content_type":"text/csv","result":"a,b\n1,2"}`,
			wantStatus: 200, wantBody: "a,b\n1,2", wantHeader: [2]string{"Content-Type", "text/csv"}},
		{name: "headers", result: `{"windmill_headers":{"X-Vane":"yes"},"result":1}`,
			wantStatus: 200, wantBody: "1", wantHeader: [2]string{"X-Vane", "yes"}},
		{name: "no result is 204", result: `{"windmill_status_code":204}`, wantStatus: 204, wantBody: ""},
		{name: "headers without result", result: `{"windmill_headers":{"X-Only":"h"}}`, wantStatus: 204, wantBody: "",
			wantHeader: [2]string{"X-Only", "h"}},
		{name: "plain object", result: `{"a":1}`, wantStatus: 200, wantBody: `{"a":1}`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "u/admin/shape" + string(rune('a'+i))
			c.MustSaveScript(path, "bash", "cat > result.json <<'EOF'\n"+tt.result+"\nEOF\n")
			r := c.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/"+path, map[string]any{}, tt.wantStatus)
			if strings.TrimSpace(r.Body) != tt.wantBody {
				t.Fatalf("body %q, want %q", r.Body, tt.wantBody)
			}
			if h := tt.wantHeader; h[0] != "" && !strings.HasPrefix(r.Header.Get(h[0]), h[1]) {
				t.Fatalf("header %s = %q, want %q", h[0], r.Header.Get(h[0]), h[1])
			}
		})
	}
}

// waitRunning polls until the job is running, or fails the test.
func waitRunning(t *testing.T, c *Client, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var u struct {
			Running   bool `json:"running"`
			Completed bool `json:"completed"`
		}
		c.MustDo("GET", "/api/w/main/jobs_u/getupdate/"+id, nil, 200).JSON(t, &u)
		if u.Running {
			return
		}
		if u.Completed || time.Now().After(deadline) {
			t.Fatalf("job %s never seen running (completed %v)", id, u.Completed)
		}
		time.Sleep(10 * time.Millisecond) // polling the job's state with a deadline
	}
}

// TestJobs_LogsWhileRunningAndCancel checks that logs are visible before
// the job ends and that cancel kills a running `sleep 100` within a second.
func TestJobs_LogsWhileRunningAndCancel(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	c.MustSaveScript("u/admin/slow", "bash", "echo first line\nsleep 100\necho never\n")
	id := c.MustDo("POST", "/api/w/main/jobs/run/p/u/admin/slow", map[string]any{}, 201).Body
	waitRunning(t, c, id)

	offset, logs := 0, ""
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs, "first line") {
		var u struct {
			Running   bool   `json:"running"`
			NewLogs   string `json:"new_logs"`
			LogOffset int    `json:"log_offset"`
		}
		c.MustDo("GET", "/api/w/main/jobs_u/getupdate/"+id+"?log_offset="+itoa(offset), nil, 200).JSON(t, &u)
		if !u.Running {
			t.Fatalf("job stopped running before its logs were seen (logs %q)", logs)
		}
		logs += u.NewLogs
		offset = u.LogOffset
		if time.Now().After(deadline) {
			t.Fatalf("logs of the running job never showed its first line: %q", logs)
		}
		time.Sleep(20 * time.Millisecond) // polling incremental logs with a deadline
	}

	start := time.Now()
	c.MustDo("POST", "/api/w/main/jobs_u/queue/cancel/"+id, map[string]any{"reason": "test"}, 200)
	res, ok := c.WaitJob(id, 10*time.Second)
	took := time.Since(start)
	t.Logf("cancel to completion: %s", took)
	if ok || !strings.Contains(string(res), "anceled") {
		t.Fatalf("canceled job: success %v result %s", ok, res)
	}
	// The race detector slows the server several times over.
	limit := time.Second
	if raceEnabled {
		limit = 5 * time.Second
	}
	if took > limit {
		t.Fatalf("cancel took %s to stop sleep 100, want at most %s", took, limit)
	}
}

// TestJobs_RestartKeepsScriptsAndJobs restarts the server on its data dir.
func TestJobs_RestartKeepsScriptsAndJobs(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	hash := c.MustSaveScript("u/admin/hello", "bash", helloScript)
	id := c.MustDo("POST", "/api/w/main/jobs/run/p/u/admin/hello", map[string]any{"name": "before"}, 201).Body
	c.WaitJob(id, 30*time.Second)

	srv.Stop()
	srv.Restart()
	c = srv.Client()

	var sc struct {
		Hash    string `json:"hash"`
		Content string `json:"content"`
	}
	c.MustDo("GET", "/api/w/main/scripts/get/p/u/admin/hello", nil, 200).JSON(t, &sc)
	if sc.Hash != hash || sc.Content != helloScript {
		t.Fatalf("after restart the script is %+v, want hash %s and the same content", sc, hash)
	}
	if res := c.MustDo("GET", "/api/w/main/jobs_u/completed/get_result/"+id, nil, 200).Body; res != `"hello before"` {
		t.Fatalf("after restart the result is %q", res)
	}
	r := c.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/hello", map[string]any{"name": "after"}, 200)
	if r.Body != `"hello after"` {
		t.Fatalf("after restart run_wait_result gives %q", r.Body)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestJobs_WaitResultTimeoutCancels checks that run_wait_result gives up
// after TIMEOUT_WAIT_RESULT with 500 "timeout after Ns" and cancels the job.
func TestJobs_WaitResultTimeoutCancels(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{Args: []string{"--timeout-wait-result", "1"}})
	c := srv.Client()
	c.MustSaveScript("u/admin/sleepy", "bash", "sleep 100\n")
	r := c.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/sleepy", map[string]any{}, 500)
	if !strings.Contains(r.Body, "timeout after 1s") {
		t.Fatalf("timeout body %q, want it to say \"timeout after 1s\"", r.Body)
	}
	id := onlyJob(t, c)
	if res, ok := c.WaitJob(id, 10*time.Second); ok || !strings.Contains(string(res), "anceled") {
		t.Fatalf("the timed-out job: success %v result %s, want canceled", ok, res)
	}
}

// TestJobs_WaitResultDisconnectCancels checks that a run_wait_result caller
// that hangs up cancels its job.
func TestJobs_WaitResultDisconnectCancels(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	c.MustSaveScript("u/admin/sleepy", "bash", "sleep 100\n")
	impatient := &http.Client{Timeout: 10 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/api/w/main/jobs/run_wait_result/p/u/admin/sleepy", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	done := make(chan error, 1)
	go func() {
		resp, err := impatient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	// Hang up once the job is running.
	var id string
	deadline := time.Now().Add(30 * time.Second)
	for id == "" {
		var jobs []struct {
			ID      string `json:"id"`
			Running bool   `json:"running"`
		}
		c.MustDo("GET", "/api/w/main/jobs/queue/list", nil, 200).JSON(t, &jobs)
		if len(jobs) == 1 && jobs[0].Running {
			id = jobs[0].ID
		} else if time.Now().After(deadline) {
			t.Fatalf("the job never ran: %+v", jobs)
		} else {
			time.Sleep(10 * time.Millisecond) // polling the queue with a deadline
		}
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the request ended without the client hanging up")
	}
	if res, ok := c.WaitJob(id, 10*time.Second); ok || !strings.Contains(string(res), "anceled") {
		t.Fatalf("the abandoned job: success %v result %s, want canceled", ok, res)
	}
}

// onlyJob returns the id of the one job of workspace main.
func onlyJob(t *testing.T, c *Client) string {
	t.Helper()
	var jobs []struct {
		ID string `json:"id"`
	}
	c.MustDo("GET", "/api/w/main/jobs/list", nil, 200).JSON(t, &jobs)
	if len(jobs) != 1 {
		t.Fatalf("want one job, have %d", len(jobs))
	}
	return jobs[0].ID
}

// TestJobs_SigtermLetsRunningJobsFinish stops the server while a job runs:
// the job gets the grace period to finish, and its result survives.
func TestJobs_SigtermLetsRunningJobsFinish(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{Args: []string{"--shutdown-grace", "20"}})
	c := srv.Client()
	c.MustSaveScript("u/admin/short", "bash", "echo started\nsleep 1\necho finished\n")
	id := c.MustDo("POST", "/api/w/main/jobs/run/p/u/admin/short", map[string]any{}, 201).Body
	waitRunning(t, c, id)
	srv.Stop()
	srv.Restart()
	c = srv.Client()
	if res, ok := c.WaitJob(id, 30*time.Second); !ok || string(res) != `"finished"` {
		t.Fatalf("job running at SIGTERM: success %v result %s, want \"finished\"", ok, res)
	}
	var job struct {
		Restarts int `json:"restarts"`
	}
	c.MustDo("GET", "/api/w/main/jobs_u/get/"+id+"?no_logs=true", nil, 200).JSON(t, &job)
	if job.Restarts != 0 {
		t.Fatalf("the job was re-run %d times: it should have finished during the grace period", job.Restarts)
	}
}

// TestJobs_ScheduledLaterStaysQueued runs a job an hour from now: it waits in
// the queue (not running) until canceled, which completes it at once.
func TestJobs_ScheduledLaterStaysQueued(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	c.MustSaveScript("u/admin/later", "bash", "echo later\n")
	id := c.MustDo("POST", "/api/w/main/jobs/run/p/u/admin/later?scheduled_in_secs=3600", map[string]any{}, 201).Body
	// A job that runs now, on the same workers, proves they are claiming.
	c.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/later", map[string]any{}, 200)
	var queued []struct {
		ID           string    `json:"id"`
		Running      bool      `json:"running"`
		ScheduledFor time.Time `json:"scheduled_for"`
	}
	c.MustDo("GET", "/api/w/main/jobs/queue/list", nil, 200).JSON(t, &queued)
	if len(queued) != 1 || queued[0].ID != id || queued[0].Running || time.Until(queued[0].ScheduledFor) < 50*time.Minute {
		t.Fatalf("queue: %+v", queued)
	}
	c.MustDo("POST", "/api/w/main/jobs_u/queue/cancel/"+id, map[string]any{"reason": "not needed"}, 200)
	var m struct {
		Completed bool `json:"completed"`
		Success   bool `json:"success"`
	}
	c.MustDo("GET", "/api/w/main/jobs_u/completed/get_result_maybe/"+id, nil, 200).JSON(t, &m)
	if !m.Completed || m.Success {
		t.Fatalf("canceled queued job: %+v", m)
	}
}

// TestJobs_IdentityPreview: a preview of kind identity (no language) is
// claimed and answers its args, as Windmill's identity job does; it used to
// stay queued, since workers claimed by language alone.
func TestJobs_IdentityPreview(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	id := c.MustDo("POST", "/api/w/main/jobs/run/preview", map[string]any{"kind": "identity", "args": map[string]any{"a": 1, "b": "two"}}, 201).Body
	res, ok := c.WaitJob(id, 30*time.Second)
	if !ok || string(res) != `{"a":1,"b":"two"}` {
		t.Fatalf("identity job: success %v, result %s", ok, res)
	}
}
