package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// The secrets alice's jobs print, return and hold as code; nothing bob
// receives may contain them.
const (
	aliceJobSecret     = "alice-job-secret-5d1e"
	alicePreviewSecret = "alice-preview-code-8c2b"
)

// selfReadScript reads, with the job's own WM_TOKEN, the job itself and the
// job other (its one arg), and returns both HTTP statuses. Plain bash
// (/dev/tcp), so the test needs no curl on the machine.
const selfReadScript = `other="$1"
hostport=${BASE_INTERNAL_URL#http://}
hostport=${hostport%%/*}
status_of() {
  exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"
  printf 'GET /api/w/main/jobs_u/get/%s HTTP/1.0\r\nHost: vane\r\nAuthorization: Bearer %s\r\n\r\n' "$1" "$WM_TOKEN" >&3
  read -r status_line <&3
  exec 3<&-
  set -- $status_line
  printf '%s' "$2"
}
own=$(status_of "$WM_JOB_ID")
theirs=$(status_of "$other")
printf '{"own":"%s","other":"%s"}' "$own" "$theirs" > result.json
`

// TestACL_Jobs checks over HTTP that a member sees only the jobs submitted
// as them and the jobs of script paths they may read: another member gets
// the answers of a missing job for every read and for cancel, and lists
// leave the jobs out; the admin sees everything; jobs of f/ scripts (a folder shared with g/all) are
// seen by every member; a preview at another user's path is refused.
func TestACL_Jobs(t *testing.T) {
	// Room for the two sleeping jobs and the rest beside them.
	srv := MustStartServer(t, ServerOptions{Args: []string{"--workers", "6"}})
	admin := srv.Client()
	member := func(email string) *Client { return admin.MustAddMember(email, false) }
	alice, bob := member("alice@example.com"), member("bob@example.com")

	// Everything bob receives, to look for the secrets at the end.
	var toBob []string
	bobDo := func(method, path string, body any) Response {
		t.Helper()
		r := bob.Do(method, path, body)
		toBob = append(toBob, r.Body)
		return r
	}
	bobMust := func(method, path string, body any, want int) Response {
		t.Helper()
		r := bobDo(method, path, body)
		if r.Status != want {
			t.Fatalf("bob: %s %s: status %d, want %d; body %q", method, path, r.Status, want, r.Body)
		}
		return r
	}

	alice.MustSaveScript("u/alice/secret_echo", "bash", "secret=\"$1\"\necho \"the secret is $secret\"\nprintf '\"%s\"' \"$secret\" > result.json\n")
	alice.MustSaveScript("u/alice/sleep", "bash", "echo sleeping\nsleep 300\n")
	alice.MustSaveScript("u/alice/self_read", "bash", selfReadScript)
	alice.MustCreateFolder("main", "shared", map[string]bool{"g/all": false})
	alice.MustSaveScript("f/shared/ok", "bash", "echo shared ok\n")
	bob.MustSaveScript("u/bob/hello", "bash", "echo hello bob\n")
	bob.MustSaveScript("u/bob/sleep", "bash", "sleep 300\n")

	run := func(c *Client, path string, args map[string]any) string {
		t.Helper()
		return c.MustDo("POST", "/api/w/main/jobs/run/p/"+path, args, 201).Body
	}
	mustSucceed := func(c *Client, id string) json.RawMessage {
		t.Helper()
		res, ok := c.WaitJob(id, time.Minute)
		if !ok {
			t.Fatalf("job %s failed: %s", id, res)
		}
		return res
	}

	// Bob's first job, then alice's between his, so that pages counted
	// before the filter would be short.
	bobFirst := run(bob, "u/bob/hello", map[string]any{})
	mustSucceed(bob, bobFirst)
	secretJob := run(alice, "u/alice/secret_echo", map[string]any{"secret": aliceJobSecret})
	if res := mustSucceed(alice, secretJob); string(res) != `"`+aliceJobSecret+`"` {
		t.Fatalf("u/alice/secret_echo: result %s", res)
	}
	preview := alice.MustDo("POST", "/api/w/main/jobs/run/preview", map[string]any{"content": "echo " + alicePreviewSecret + "\n",
		"language": "bash", "args": map[string]any{}, "path": "u/alice/draft"}, 201).Body
	mustSucceed(alice, preview)
	sharedJob := run(alice, "f/shared/ok", map[string]any{})
	mustSucceed(alice, sharedJob)
	bobPreview := bob.MustDo("POST", "/api/w/main/jobs/run/preview", map[string]any{"content": "echo bob preview\n",
		"language": "bash", "args": map[string]any{}}, 201).Body
	mustSucceed(bob, bobPreview)
	aliceSleep := run(alice, "u/alice/sleep", map[string]any{})
	waitRunning(t, alice, aliceSleep)
	bobSleep := run(bob, "u/bob/sleep", map[string]any{})
	waitRunning(t, bob, bobSleep)

	// The secrets are there for those who may see them, so their absence
	// from bob's answers below means something.
	for _, c := range []*Client{alice, admin} {
		if got := c.MustDo("GET", "/api/w/main/jobs_u/get/"+secretJob, nil, 200).Body; !strings.Contains(got, aliceJobSecret) {
			t.Fatalf("the secret job as its owner or the admin: %s", got)
		}
		if got := c.MustDo("GET", "/api/w/main/jobs_u/get/"+preview, nil, 200).Body; !strings.Contains(got, alicePreviewSecret) {
			t.Fatalf("the preview as its owner or the admin: %s", got)
		}
	}

	t.Run("alice's jobs are 404 to bob as missing ones", func(t *testing.T) {
		const missingID = "0193a5f0-0000-7000-8000-00000000dead"
		routes := []struct{ method, route string }{
			{"GET", "jobs_u/get/"},
			{"GET", "jobs_u/completed/get/"},
			{"GET", "jobs_u/get_args/"},
			{"GET", "jobs_u/get_logs/"},
			{"GET", "jobs_u/getupdate/"},
			{"GET", "jobs_u/completed/get_result/"},
			{"GET", "jobs_u/completed/get_result_maybe/"},
			{"POST", "jobs_u/queue/cancel/"},
		}
		for _, job := range []struct{ name, id string }{{"secret job", secretJob}, {"preview", preview}, {"running job", aliceSleep}} {
			for _, rt := range routes {
				t.Run(job.name+" "+rt.route, func(t *testing.T) {
					body := map[string]any{"reason": "bob"}
					got := bobDo(rt.method, "/api/w/main/"+rt.route+job.id, body)
					missing := bobDo(rt.method, "/api/w/main/"+rt.route+missingID, body)
					if got.Status != 404 || missing.Status != 404 {
						t.Fatalf("status %d (%q), and %d for a missing job; want 404 for both", got.Status, got.Body, missing.Status)
					}
					if want := strings.ReplaceAll(missing.Body, missingID, job.id); got.Body != want {
						t.Fatalf("body %q; a missing job gets %q", got.Body, missing.Body)
					}
				})
			}
		}
		// Bob's cancel left alice's job running.
		var j struct {
			Running  bool `json:"running"`
			Canceled bool `json:"canceled"`
		}
		alice.MustDo("GET", "/api/w/main/jobs_u/get/"+aliceSleep+"?no_logs=true", nil, 200).JSON(t, &j)
		if !j.Running || j.Canceled {
			t.Fatalf("alice's job after bob's cancel: running %v canceled %v", j.Running, j.Canceled)
		}
		// The other way round too: bob's jobs are not alice's to see.
		if r := alice.Do("GET", "/api/w/main/jobs_u/get/"+bobFirst, nil); r.Status != 404 {
			t.Fatalf("alice reading bob's job: %d %s", r.Status, r.Body)
		}
	})

	t.Run("jobs of f/ scripts are every member's", func(t *testing.T) {
		bobMust("GET", "/api/w/main/jobs_u/get/"+sharedJob, nil, 200)
		if logs := bobMust("GET", "/api/w/main/jobs_u/get_logs/"+sharedJob, nil, 200).Body; !strings.Contains(logs, "shared ok") {
			t.Fatalf("logs of the f/ job: %q", logs)
		}
	})

	t.Run("lists hold only the jobs the caller may see", func(t *testing.T) {
		tests := []struct {
			name   string
			do     func(path string) Response
			list   string
			want   []string
			absent []string
		}{
			{"bob: all", func(p string) Response { return bobMust("GET", p, nil, 200) }, "jobs/list",
				[]string{bobFirst, sharedJob, bobPreview, bobSleep}, []string{secretJob, preview, aliceSleep}},
			{"bob: queue", func(p string) Response { return bobMust("GET", p, nil, 200) }, "jobs/queue/list",
				[]string{bobSleep}, []string{aliceSleep}},
			{"bob: completed", func(p string) Response { return bobMust("GET", p, nil, 200) }, "jobs/completed/list",
				[]string{bobFirst, sharedJob, bobPreview}, []string{secretJob, preview}},
			{"alice: all", func(p string) Response { return alice.MustDo("GET", p, nil, 200) }, "jobs/list",
				[]string{secretJob, preview, sharedJob, aliceSleep}, []string{bobFirst, bobPreview, bobSleep}},
			{"admin: all", func(p string) Response { return admin.MustDo("GET", p, nil, 200) }, "jobs/list",
				[]string{bobFirst, secretJob, preview, sharedJob, bobPreview, aliceSleep, bobSleep}, nil},
			{"admin: queue", func(p string) Response { return admin.MustDo("GET", p, nil, 200) }, "jobs/queue/list",
				[]string{aliceSleep, bobSleep}, nil},
			{"admin: completed", func(p string) Response { return admin.MustDo("GET", p, nil, 200) }, "jobs/completed/list",
				[]string{bobFirst, secretJob, preview, sharedJob, bobPreview}, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := jobIDs(t, tt.do("/api/w/main/"+tt.list+"?per_page=1000"))
				for _, id := range tt.want {
					if !slices.Contains(got, id) {
						t.Errorf("%s lacks %s: %v", tt.list, id, got)
					}
				}
				for _, id := range tt.absent {
					if slices.Contains(got, id) {
						t.Errorf("%s shows %s: %v", tt.list, id, got)
					}
				}
			})
		}

		// Pages are counted after the filter: page k of one job is the
		// k-th job of bob's whole list, and the page past it is empty.
		all := jobIDs(t, bobMust("GET", "/api/w/main/jobs/list?per_page=1000", nil, 200))
		if len(all) != 4 {
			t.Fatalf("bob's jobs: %v, want his three and the f/ one", all)
		}
		for i, id := range all {
			page := jobIDs(t, bobMust("GET", "/api/w/main/jobs/list?per_page=1&page="+itoa(i+1), nil, 200))
			if len(page) != 1 || page[0] != id {
				t.Fatalf("bob's page %d of one: %v, want [%s] (all: %v)", i+1, page, id, all)
			}
		}
		if page := jobIDs(t, bobMust("GET", "/api/w/main/jobs/list?per_page=1&page="+itoa(len(all)+1), nil, 200)); len(page) != 0 {
			t.Fatalf("bob's page past his jobs: %v", page)
		}
		if page := jobIDs(t, bobMust("GET", "/api/w/main/jobs/list?per_page=2&page=2&order_desc=true", nil, 200)); len(page) != 2 ||
			page[0] != all[len(all)-3] || page[1] != all[len(all)-4] {
			t.Fatalf("bob's second page of two, newest first: %v (all: %v)", page, all)
		}
	})

	t.Run("a preview at another user's path is 403 and queues nothing", func(t *testing.T) {
		before := jobIDs(t, admin.MustDo("GET", "/api/w/main/jobs/list?per_page=1000", nil, 200))
		r := bobDo("POST", "/api/w/main/jobs/run/preview", map[string]any{"content": "echo hijack\n",
			"language": "bash", "args": map[string]any{}, "path": "u/alice/x"})
		if r.Status != 403 || !strings.Contains(r.Body, "u/alice/x") {
			t.Fatalf("status %d body %q; want 403 naming u/alice/x", r.Status, r.Body)
		}
		after := jobIDs(t, admin.MustDo("GET", "/api/w/main/jobs/list?per_page=1000", nil, 200))
		if len(after) != len(before) {
			t.Fatalf("the refused preview queued a job: %d jobs before, %d after", len(before), len(after))
		}
		if at := jobIDs(t, admin.MustDo("GET", "/api/w/main/jobs/list?script_path_exact=u/alice/x", nil, 200)); len(at) != 0 {
			t.Fatalf("jobs at u/alice/x: %v", at)
		}
	})

	t.Run("a job reads itself with its WM_TOKEN and nothing its submitter may not", func(t *testing.T) {
		got := alice.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/alice/self_read", map[string]any{"other": bobFirst}, 200).Body
		if got != `{"own":"200","other":"404"}` {
			t.Fatalf("the job's own reads: %s", got)
		}
	})

	t.Run("the owner cancels her job", func(t *testing.T) {
		alice.MustDo("POST", "/api/w/main/jobs_u/queue/cancel/"+aliceSleep, map[string]any{"reason": "done"}, 200)
		if res, ok := alice.WaitJob(aliceSleep, time.Minute); ok || !strings.Contains(string(res), "anceled") {
			t.Fatalf("alice's canceled job: success %v result %s", ok, res)
		}
		bobMust("POST", "/api/w/main/jobs_u/queue/cancel/"+bobSleep, map[string]any{"reason": "done"}, 200)
		if res, ok := bob.WaitJob(bobSleep, time.Minute); ok || !strings.Contains(string(res), "anceled") {
			t.Fatalf("bob's canceled job: success %v result %s", ok, res)
		}
	})

	for _, body := range toBob {
		if strings.Contains(body, aliceJobSecret) || strings.Contains(body, alicePreviewSecret) {
			t.Fatalf("bob received a secret of alice's: %q", body)
		}
	}
}

// jobIDs returns the ids of a job listing, in its order.
func jobIDs(tb testing.TB, r Response) []string {
	tb.Helper()
	var jobs []struct {
		ID string `json:"id"`
	}
	r.JSON(tb, &jobs)
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	return ids
}
