package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Windmill's own clients drive flows on the real binary: windmill-client
// (the npm package, fetched by Deno at run time) in Deno jobs, and vane's
// wmill module in Python jobs, each job reaching the API as users' jobs do
// (through the jail's forwarder where the kernel allows the jail). Issue 15,
// "What it must show", points 3 (the clients' resume URLs) and 4.

// windmillClient is the windmill-client version the Deno scripts import
// (the one runtime/deno's tests pin).
const windmillClient = "npm:windmill-client@1.818.0"

// mustStartFlowServer starts vane with Deno, Python and bash, and a data
// dir the jail's unprivileged user can reach (a test temp dir is 0700).
// Four workers: a job that waits for a flow holds its worker, as in
// Windmill, while the flow's own job and steps need others.
func mustStartFlowServer(t *testing.T) *Server {
	t.Helper()
	tools := toolsDir(t)
	for _, p := range []string{filepath.Join(tools, "python-wasm", "current"), filepath.Join(tools, "deno", "node_modules", "@deno", "linux-x64-glibc", "deno")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is missing (%v): make deps installs it", p, err)
		}
	}
	dir, err := os.MkdirTemp("", "vane-e2e-flowclients-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return MustStartServer(t, ServerOptions{DataDir: dir, Args: []string{"--languages", "deno,python3,bash", "--workers", "4"}})
}

// mustSaveFlow saves an OpenFlow value at path in workspace main.
func (c *Client) mustSaveFlow(path string, value any) {
	c.tb.Helper()
	c.MustDo("POST", "/api/w/main/flows/create", map[string]any{"path": path, "summary": "", "description": "",
		"value": value, "schema": map[string]any{"type": "object", "properties": map[string]any{}}}, 201)
}

// mustDeployed saves a script and waits for its deployment to succeed.
func (c *Client) mustDeployed(t *testing.T, path, lang, code string) {
	t.Helper()
	if lock, lockErr := deploymentStatus(t, c, c.MustSaveScript(path, lang, code)); lock == nil {
		t.Fatalf("deployment of %s failed: %s", path, *lockErr)
	}
}

// rawStep is a rawscript module.
func rawStep(id, lang, code string, transforms map[string]any) map[string]any {
	if transforms == nil {
		transforms = map[string]any{}
	}
	return map[string]any{"id": id, "value": map[string]any{"type": "rawscript", "language": lang, "content": code, "input_transforms": transforms}}
}

// js is a JavaScript input transform.
func js(expr string) map[string]any { return map[string]any{"type": "javascript", "expr": expr} }

// doubleFlow is the flow the clients run: a Python step doubles x, a
// second labels it.
var doubleFlow = map[string]any{"modules": []any{
	rawStep("a", "python3", "def main(x: int):\n    return x * 2\n", map[string]any{"x": js("flow_input.x")}),
	rawStep("b", "python3", "def main(value: int, label: str):\n    return {\"label\": label, \"value\": value}\n",
		map[string]any{"value": js("results.a"), "label": js("flow_input.label")}),
}}

// labeled is doubleFlow's result.
type labeled struct {
	Label string `json:"label"`
	Value int    `json:"value"`
}

// TestFlowClients_RunFlow: windmill-client's runFlow (which waits) and
// runFlowAsync (then waitJob and getResult), called in a Deno job, and
// wmill's run_flow_async (then wait_job and get_result) in a Python job,
// run a saved flow and return its result. runFlow sends parent_job, so the
// flow job it starts is listed under the Deno job.
func TestFlowClients_RunFlow(t *testing.T) {
	srv := mustStartFlowServer(t)
	c := srv.Client()
	c.mustSaveFlow("f/clients/double", doubleFlow)

	t.Run("deno windmill-client", func(t *testing.T) {
		// getResult is not a named export of this version (only a member
		// of the default export, which Deno's type check reads as the
		// namespace): the script makes getResult's own call, JobService's
		// getCompletedJobResult (client.ts getResult).
		c.mustDeployed(t, "u/admin/deno_runs_flow", "deno", `import * as wmill from "`+windmillClient+`";
export async function main(x: number) {
  const sync = await wmill.runFlow("f/clients/double", { x, label: "sync" });
  const id = await wmill.runFlowAsync("f/clients/double", { x: x + 1, label: "async" });
  const waited = await wmill.waitJob(id);
  const got = await wmill.JobService.getCompletedJobResult({ workspace: Deno.env.get("WM_WORKSPACE")!, id });
  return { sync, id, waited, got, self: Deno.env.get("WM_JOB_ID"), api: Deno.env.get("BASE_INTERNAL_URL") };
}`)
		id := c.MustSubmit("u/admin/deno_runs_flow", map[string]any{"x": 20})
		res, ok := c.WaitJob(id, 3*time.Minute)
		if !ok {
			t.Fatalf("the Deno job failed: %s\n%s", res, srv.Output())
		}
		var got struct {
			Sync, Waited, Got labeled
			ID                string `json:"id"`
			Self              string `json:"self"`
			API               string `json:"api"`
		}
		if err := json.Unmarshal(res, &got); err != nil {
			t.Fatalf("result %s: %v", res, err)
		}
		// runFlow returns waitJob's value: the flow's result, the last
		// module's (windmill-client client.ts runFlow, waitJob).
		if got.Sync != (labeled{"sync", 40}) {
			t.Errorf("runFlow returned %+v; want {sync 40}", got.Sync)
		}
		if got.Waited != (labeled{"async", 42}) || got.Got != got.Waited {
			t.Errorf("runFlowAsync then waitJob returned %+v and getResult %+v; want {async 42} twice", got.Waited, got.Got)
		}
		if got.Self != id {
			t.Errorf("the job saw WM_JOB_ID %q; want %s", got.Self, id)
		}
		// Where the kernel allows the jail, the job's BASE_INTERNAL_URL is
		// the jail's forwarder, not the server's own address.
		t.Logf("the Deno job reached the API at %s (the server listens at %s)", got.API, srv.URL)
		requireFlowJob(t, c, got.ID, "f/clients/double")
		// runFlow tracks its flow in the parent (doNotTrackInParent false):
		// the one flow job under the Deno job.
		var children []struct {
			ID         string `json:"id"`
			JobKind    string `json:"job_kind"`
			ScriptPath string `json:"script_path"`
		}
		c.MustDo("GET", "/api/w/main/jobs/list?parent_job="+id, nil, 200).JSON(t, &children)
		if len(children) != 1 || children[0].JobKind != "flow" || children[0].ScriptPath != "f/clients/double" || children[0].ID == got.ID {
			t.Errorf("jobs under the Deno job: %+v; want runFlow's flow job only", children)
		}
	})

	t.Run("python wmill", func(t *testing.T) {
		c.mustDeployed(t, "u/admin/py_runs_flow", "python3", `import wmill

def main(x: int):
    untracked = wmill.run_flow_async("f/clients/double", {"x": x, "label": "py"})
    tracked = wmill.run_flow_async("f/clients/double", {"x": x + 1, "label": "tracked"}, do_not_track_in_parent=False)
    return {
        "id": untracked,
        "waited": wmill.wait_job(untracked),
        "got": wmill.get_result(untracked),
        "tracked_id": tracked,
        "tracked": wmill.wait_job(tracked, timeout=120),
        "root_of_tracked": wmill.get_root_job_id(tracked),
    }
`)
		r := c.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/py_runs_flow", map[string]any{"x": 5}, 200)
		var got struct {
			ID        string  `json:"id"`
			TrackedID string  `json:"tracked_id"`
			Root      string  `json:"root_of_tracked"`
			Waited    labeled `json:"waited"`
			Got       labeled `json:"got"`
			Tracked   labeled `json:"tracked"`
		}
		r.JSON(t, &got)
		if got.Waited != (labeled{"py", 10}) || got.Got != got.Waited || got.Tracked != (labeled{"tracked", 12}) {
			t.Errorf("run_flow_async then wait_job/get_result: %s; want {py 10} twice and {tracked 12}", r.Body)
		}
		if untracked := requireFlowJob(t, c, got.ID, "f/clients/double"); untracked.ParentJob != "" {
			t.Errorf("run_flow_async's default flow has parent_job %q; want none (do_not_track_in_parent)", untracked.ParentJob)
		}
		// The tracked flow's parent is the Python job, which is the top of
		// its tree (jobs_u/get_root_job_id walks parent_job up).
		tracked := requireFlowJob(t, c, got.TrackedID, "f/clients/double")
		if tracked.ParentJob == "" || got.Root != tracked.ParentJob {
			t.Errorf("the tracked flow has parent_job %q and root %q; want the Python job as both", tracked.ParentJob, got.Root)
		}
	})

	t.Run("python wmill in a flow step", func(t *testing.T) {
		// A flow's step waits for another flow it started, tracked: the
		// client sends parent_job (the step) and root_job (the step's
		// WM_ROOT_FLOW_JOB_ID, the outer flow), and the inner flow's root
		// is the outer flow (Windmill's RunJobQuery root_job).
		c.mustSaveFlow("f/clients/outer", map[string]any{"modules": []any{
			rawStep("call", "python3", `import os
import wmill

def main(x: int):
    inner = wmill.run_flow_async("f/clients/double", {"x": x, "label": "inner"}, do_not_track_in_parent=False)
    return {"inner": inner, "result": wmill.wait_job(inner), "root": wmill.get_root_job_id(inner),
            "outer": os.environ["WM_ROOT_FLOW_JOB_ID"]}
`, map[string]any{"x": js("flow_input.x")}),
		}})
		outer := c.MustDo("POST", "/api/w/main/jobs/run/f/f/clients/outer", map[string]any{"x": 7}, 201).Body
		res, ok := c.WaitJob(outer, 2*time.Minute)
		var got struct {
			Inner  string  `json:"inner"`
			Result labeled `json:"result"`
			Root   string  `json:"root"`
			Outer  string  `json:"outer"`
		}
		if err := json.Unmarshal(res, &got); !ok || err != nil {
			t.Fatalf("the outer flow ended with %s (success %v, %v)\n%s", res, ok, err, srv.Output())
		}
		if got.Result != (labeled{"inner", 14}) || got.Outer != outer || got.Root != outer {
			t.Errorf("the outer flow %s returned %s; want the inner result {inner 14}, and the outer flow as its step's and the inner flow's root", outer, res)
		}
		inner := requireFlowJob(t, c, got.Inner, "f/clients/double")
		step := requireFlowStep(t, c, outer, "call")
		if inner.ParentJob != step || inner.RootJob != outer {
			t.Errorf("the inner flow has parent_job %q and root_job %q; want the step %s and the outer flow %s", inner.ParentJob, inner.RootJob, step, outer)
		}
	})
}

// flowJob is the part of a flow job the tests look at.
type flowJob struct {
	Type       string `json:"type"`
	JobKind    string `json:"job_kind"`
	ScriptPath string `json:"script_path"`
	ParentJob  string `json:"parent_job"`
	RootJob    string `json:"root_job"`
	Success    bool   `json:"success"`
	FlowStatus struct {
		Modules []struct {
			Type string `json:"type"`
			ID   string `json:"id"`
			Job  string `json:"job"`
		} `json:"modules"`
	} `json:"flow_status"`
	Result json.RawMessage `json:"result"`
}

// requireFlowJob checks that id is a uuid naming a flow job of path, and
// returns it.
func requireFlowJob(t *testing.T, c *Client, id, path string) flowJob {
	t.Helper()
	if _, err := uuid.Parse(id); err != nil {
		t.Fatalf("the client returned %q, not a job id: %v", id, err)
	}
	var j flowJob
	c.MustDo("GET", "/api/w/main/jobs_u/get/"+id, nil, 200).JSON(t, &j)
	if j.JobKind != "flow" || j.ScriptPath != path {
		t.Fatalf("job %s: kind %q, path %q, parent %q; want a flow job of %s", id, j.JobKind, j.ScriptPath, j.ParentJob, path)
	}
	return j
}

// requireFlowStep returns the job id of module id of flow job flow.
func requireFlowStep(t *testing.T, c *Client, flow, id string) string {
	t.Helper()
	var j flowJob
	c.MustDo("GET", "/api/w/main/jobs_u/get/"+flow, nil, 200).JSON(t, &j)
	for _, m := range j.FlowStatus.Modules {
		if m.ID == id && m.Job != "" {
			return m.Job
		}
	}
	t.Fatalf("flow %s has no job for module %s: %+v", flow, id, j.FlowStatus)
	return ""
}

// resumeURLs is resume_urls' answer (Windmill's).
type resumeURLs struct {
	ApprovalPage string `json:"approvalPage"`
	Resume       string `json:"resume"`
	Cancel       string `json:"cancel"`
}

// TestFlowClients_ResumeURLs: a flow's first step, in Deno with
// windmill-client's getResumeUrls and in Python with wmill's
// get_resume_urls, returns the URLs of its own suspend; the flow suspends
// after it (required_events 1). POSTing a payload to the resume URL
// completes the flow with the payload in the next step's scope as
// `resume`; the cancel URL of another run disapproves it.
func TestFlowClients_ResumeURLs(t *testing.T) {
	srv := mustStartFlowServer(t)
	c := srv.Client()
	steps := map[string]map[string]any{
		"deno": rawStep("a", "deno", `import * as wmill from "`+windmillClient+`";
export async function main() {
  return await wmill.getResumeUrls();
}`, nil),
		"python3": rawStep("a", "python3", "import wmill\n\ndef main():\n    return wmill.get_resume_urls()\n", nil),
	}
	for _, lang := range []string{"deno", "python3"} {
		t.Run(lang, func(t *testing.T) {
			first := steps[lang]
			first["suspend"] = map[string]any{"required_events": 1, "timeout": 600}
			path := "f/clients/approve_" + lang
			c.mustSaveFlow(path, map[string]any{"modules": []any{
				first,
				rawStep("b", "python3", "def main(payload: dict, urls: dict):\n    return {\"payload\": payload, \"had_urls\": sorted(urls)}\n",
					map[string]any{"payload": js("resume"), "urls": js("results.a")}),
			}})

			// Approve: POST a payload to the resume URL.
			flow := c.MustDo("POST", "/api/w/main/jobs/run/f/"+path, map[string]any{}, 201).Body
			urls, step := waitSuspended(t, c, srv, flow)
			for name, u := range map[string]string{"resume": urls.Resume, "cancel": urls.Cancel} {
				if !strings.HasPrefix(u, srv.URL+"/api/w/main/jobs_u/"+name+"/"+step+"/") {
					t.Errorf("%s URL %q is not for step job %s of %s", name, u, step, srv.URL)
				}
			}
			if !strings.Contains(urls.ApprovalPage, step) {
				t.Errorf("approval page %q does not name step job %s", urls.ApprovalPage, step)
			}
			if st, body := post(t, urls.Resume, `{"approved": true, "note": "from `+lang+`"}`); st/100 != 2 {
				t.Fatalf("POST to the resume URL: %d %s", st, body)
			}
			res, ok := c.WaitJob(flow, 2*time.Minute)
			var got struct {
				Payload map[string]any `json:"payload"`
				HadURLs []string       `json:"had_urls"`
			}
			if err := json.Unmarshal(res, &got); !ok || err != nil {
				t.Fatalf("the resumed flow ended with %s (success %v, %v)", res, ok, err)
			}
			if got.Payload["approved"] != true || got.Payload["note"] != "from "+lang ||
				strings.Join(got.HadURLs, ",") != "approvalPage,cancel,resume" {
				t.Errorf("the resumed flow returned %s; want the payload as resume and the three URLs", res)
			}

			// Disapprove: the cancel URL of a second run fails the flow
			// with Windmill's SuspendedDisapproved.
			flow = c.MustDo("POST", "/api/w/main/jobs/run/f/"+path, map[string]any{}, 201).Body
			urls, _ = waitSuspended(t, c, srv, flow)
			if st, body := post(t, urls.Cancel, `{}`); st/100 != 2 {
				t.Fatalf("POST to the cancel URL: %d %s", st, body)
			}
			res, ok = c.WaitJob(flow, 2*time.Minute)
			var failure struct {
				Error struct{ Name, Message string } `json:"error"`
			}
			if err := json.Unmarshal(res, &failure); ok || err != nil || failure.Error.Name != "SuspendedDisapproved" ||
				!strings.HasPrefix(failure.Error.Message, "Disapproved by ") {
				t.Errorf("the disapproved flow ended with %s (success %v); want a SuspendedDisapproved failure", res, ok)
			}
		})
	}
}

// waitSuspended waits until flow job flow has run its first step and waits
// for a resume, and returns the URLs that step returned and its job id.
func waitSuspended(t *testing.T, c *Client, srv *Server, flow string) (resumeURLs, string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var j flowJob
		c.MustDo("GET", "/api/w/main/jobs_u/get/"+flow, nil, 200).JSON(t, &j)
		if j.Type == "CompletedJob" {
			t.Fatalf("flow %s ended before its resume: %s\n%s", flow, j.Result, srv.Output())
		}
		if m := j.FlowStatus.Modules; len(m) == 2 && m[0].Type == "Success" && m[1].Type == "WaitingForEvents" {
			var urls resumeURLs
			c.MustDo("GET", "/api/w/main/jobs/result_by_id/"+flow+"/a", nil, 200).JSON(t, &urls)
			return urls, m[0].Job
		}
		if time.Now().After(deadline) {
			t.Fatalf("flow %s did not suspend within 3 minutes: %+v\n%s", flow, j.FlowStatus, srv.Output())
		}
		time.Sleep(20 * time.Millisecond) // polling the flow's status with a deadline
	}
}

// post sends body to a signed URL with no token, as an approver's client.
func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}
