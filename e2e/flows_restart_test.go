package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Flow preprocessors in the languages that have them, and restarting a
// finished flow from a step, over HTTP against the real binary.

// mustStartFlowLanguages starts a server with Bash, Deno and Python.
func mustStartFlowLanguages(t *testing.T) *Client {
	t.Helper()
	if _, err := os.Stat(filepath.Join(toolsDir(t), "python-wasm", "current")); err != nil {
		t.Fatalf("the CPython wasm build is missing (%v): make deps installs it", err)
	}
	return MustStartServer(t, ServerOptions{Args: []string{"--languages", "bash,deno,python3", "--workers", "4"}}).Client()
}

// stepJob reads what the tests check of a step job.
type stepJob struct {
	Entrypoint string `json:"entrypoint"`
	Language   string `json:"language"`
	Success    bool   `json:"success"`
}

// TestFlows_Preprocessor: a flow's preprocessor_module calls its script's
// preprocessor function, not main, on the flow's args; its object result
// becomes the args the modules see (openflow FlowValue.preprocessor_module;
// worker_flow.rs PreprocessorStep sets ENTRYPOINT_OVERRIDE "preprocessor"
// and replaces the flow's args with the result). Each script's main would
// return something else, and takes parameters the flow's args do not
// have: nothing checks the args against main's schema.
func TestFlows_Preprocessor(t *testing.T) {
	c := mustStartFlowLanguages(t)
	c.MustCreateFolder("main", "pre", nil)
	consume := bash("a", "y=\"$1\"\necho \"a got $y\"\n", in{"y": "flow_input.y"})
	c.mustDeployed(t, "f/pre/saved_ts", "deno", `export async function preprocessor(raw: string) {
  return { y: "saved ts " + raw.toUpperCase() };
}
export async function main(y: string, must: number) {
  return { y: "main ran" };
}
`)
	cases := []struct {
		name, lang string
		pre        M
		want       string
	}{
		{"python rawscript", "python3", rawModule("preprocessor", "python3", `def preprocessor(x: str):
    return {"y": "py " + x}

def main(y: str, must: int):
    return {"y": "main ran"}
`, nil), `"a got py in"`},
		{"deno rawscript", "deno", rawModule("preprocessor", "deno", `export async function preprocessor(x: string) {
  return { y: "ts " + x };
}
export async function main(y: string, must: number) {
  return { y: "main ran" };
}
`, nil), `"a got ts in"`},
		{"deno saved script", "deno", scriptStep("preprocessor", "f/pre/saved_ts", "", nil), `"a got saved ts IN"`},
	}
	ids := make([]string, len(cases))
	for i, tc := range cases {
		path := "f/pre/flow" + string(rune('a'+i))
		c.MustSaveFlow(path, flowValue(M{"preprocessor_module": tc.pre}, consume))
		args := M{"x": "in"}
		if strings.Contains(tc.name, "saved") {
			args = M{"raw": "in"}
		}
		ids[i] = c.MustRunFlow(path, args)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := c.For(t)
			result, ok := c.WaitJob(ids[i], 3*time.Minute)
			if !ok || string(result) != tc.want {
				t.Fatalf("flow ended success=%v with %s, want %s", ok, result, tc.want)
			}
			jobs := wantKeys(t, c, ids[i], "preprocessor@0", "a@0")
			for _, j := range jobs {
				var sj stepJob
				c.MustDo("GET", "/api/w/main/jobs_u/get/"+j.ID, nil, 200).JSON(t, &sj)
				want := stepJob{Success: true, Language: "bash"}
				if j.FlowStepKey == "preprocessor@0" {
					want = stepJob{Entrypoint: "preprocessor", Success: true, Language: tc.lang}
				}
				if sj != want {
					t.Errorf("step job %s: %+v, want %+v", j.FlowStepKey, sj, want)
				}
			}
			// The flow job keeps the args it was given.
			if args := c.MustDo("GET", "/api/w/main/jobs_u/get_args/"+ids[i], nil, 200).Body; !strings.Contains(args, `"in"`) {
				t.Errorf("the flow's args are %s", args)
			}
		})
	}
}

// threeSteps is the flow the restart tests run: a returns its own job id
// (so a result tells which run of a it is), b fails unless flow_input.ok
// is "yes", c combines them.
func threeSteps(last string) M {
	return flowValue(nil,
		bash("a", "echo \"$WM_JOB_ID\"\n", nil),
		bash("b", "ok=\"$1\"\nif [ \"$ok\" != yes ]; then echo \"bad input: $ok\"; exit 1; fi\necho \"b ok\"\n", in{"ok": "flow_input.ok"}),
		bash("c", last, in{"a": "results.a", "b": "results.b"}))
}

const combine = "a=\"$1\"\nb=\"$2\"\necho \"{\\\"a\\\": \\\"$a\\\", \\\"b\\\": \\\"$b\\\"}\" > result.json\n"

// TestFlows_Restart: POST jobs/restart/f/{id}/from/{step}/{n} runs a
// finished flow again from a step: the steps before it keep their results
// and run no job; the step and the ones after it run (Windmill's
// restart_flow, windmill-api jobs.rs, and restarted_flows_resolution,
// windmill-queue jobs.rs). Also preview_flow with restarted_from, and the
// refusals.
func TestFlows_Restart(t *testing.T) {
	c := MustStartServer(t, ServerOptions{Args: []string{"--workers", "4"}}).Client()
	const path = "f/restart/three"
	c.MustCreateFolder("main", "restart", nil)
	c.MustSaveFlow(path, threeSteps(combine))
	first := c.MustRunFlow(path, M{"ok": "no"})
	if _, ok := c.WaitJob(first, time.Minute); ok {
		t.Fatalf("the first run should fail at b")
	}
	var aJob string
	for _, j := range wantKeys(t, c, first, "a@0", "b@0") {
		if j.FlowStepKey == "a@0" {
			aJob = j.ID
		}
	}

	t.Run("from the failed step with fixed args", func(t *testing.T) {
		c := c.For(t)
		id := c.MustDo("POST", "/api/w/main/jobs/restart/f/"+first+"/from/b/0", M{"ok": "yes"}, 201).Body
		result, ok := c.WaitJob(id, time.Minute)
		// a's result is its own job id: the first run's, reused.
		if want := `{"a": "` + aJob + `", "b": "b ok"}`; !ok || !jsonEqual(result, []byte(want)) {
			t.Fatalf("restarted flow ended success=%v with %s, want %s", ok, result, want)
		}
		wantKeys(t, c, id, "b@0", "c@0") // a ran no job
		var runsOfA []corpusJob
		c.MustDo("GET", "/api/w/main/jobs/list?script_path_exact="+path+"/a", nil, 200).JSON(t, &runsOfA)
		if len(runsOfA) != 1 || runsOfA[0].ID != aJob {
			t.Errorf("jobs of step a: %d, want only the first run's %s", len(runsOfA), aJob)
		}
		j := c.MustGetJob(id)
		if j.JobKind != "flow" || j.ScriptPath != path || j.FlowStatus == nil || len(j.FlowStatus.Modules) != 3 {
			t.Fatalf("restarted job: kind %s path %s status %+v", j.JobKind, j.ScriptPath, j.FlowStatus)
		}
		// flow_status keeps a's module, its job the first run's
		// (restarted_flows_resolution copies the successful modules).
		if m := j.FlowStatus.Modules[0]; m.Type != "Success" || m.Job != aJob {
			t.Errorf("module a: %+v, want Success with job %s", m, aJob)
		}
		if r := c.MustDo("GET", "/api/w/main/jobs/result_by_id/"+id+"/a", nil, 200).Body; r != `"`+aJob+`"` {
			t.Errorf("result_by_id a = %s", r)
		}
		var rf struct {
			FlowStatus struct {
				RestartedFrom map[string]any `json:"restarted_from"`
			} `json:"flow_status"`
			RestartedFrom map[string]any `json:"restarted_from"`
		}
		c.MustDo("GET", "/api/w/main/jobs_u/get/"+id, nil, 200).JSON(t, &rf)
		if got := rf.FlowStatus.RestartedFrom; got["flow_job_id"] != first || got["step_id"] != "b" {
			t.Errorf("flow_status.restarted_from = %v", got)
		}
	})

	t.Run("null args keep the first run's", func(t *testing.T) {
		c := c.For(t)
		id := c.MustDo("POST", "/api/w/main/jobs/restart/f/"+first+"/from/b/0", "null", 201).Body
		result, ok := c.WaitJob(id, time.Minute)
		if ok || !strings.Contains(string(result), "bad input: no") {
			t.Errorf("restart with the first run's args {ok: no}: success=%v %s", ok, result)
		}
		wantKeys(t, c, id, "b@0")
	})

	t.Run("preview with restarted_from", func(t *testing.T) {
		c := c.For(t)
		value := threeSteps("a=\"$1\"\nb=\"$2\"\necho \"preview $b after $a\"\n")
		id := c.MustDo("POST", "/api/w/main/jobs/run/preview_flow", M{"value": value, "args": M{"ok": "yes"},
			"restarted_from": M{"flow_job_id": first, "step_id": "b", "branch_or_iteration_n": nil}}, 201).Body
		result, ok := c.WaitJob(id, time.Minute)
		if want := `"preview b ok after ` + aJob + `"`; !ok || string(result) != want {
			t.Fatalf("preview ended success=%v with %s, want %s", ok, result, want)
		}
		wantKeys(t, c, id, "b@0", "c@0")
	})

	t.Run("refused", func(t *testing.T) {
		c := c.For(t)
		c.MustSaveScript("f/restart/echo", "bash", "echo hi\n")
		scriptJob := c.MustSubmit("f/restart/echo", M{})
		c.WaitJob(scriptJob, time.Minute)
		c.MustSaveFlow("f/restart/waits", approvalFlow(1, nil, nil))
		waiting := c.MustRunFlow("f/restart/waits", M{})
		c.WaitSuspended(waiting)
		defer c.MustDo("POST", "/api/w/main/jobs_u/queue/cancel/"+waiting, M{"reason": "test over"}, 200)
		other := c.MustAddMember("restart_dev@example.com", false)
		restart := func(id, step, n string) string { return "/api/w/main/jobs/restart/f/" + id + "/from/" + step + "/" + n }
		cases := []struct {
			name   string
			as     *Client
			path   string
			status int
			words  string
		}{
			{"an unknown job", c, restart(uuid.NewString(), "b", "0"), 404, "cannot find job"},
			{"a job the caller may not see", other, restart(first, "b", "0"), 404, "cannot find job"},
			{"not a flow", c, restart(scriptJob, "b", "0"), 400, "is not a flow"},
			{"an unknown step", c, restart(first, "zz", "0"), 400, `no top-level module "zz"`},
			{"a flow still running", c, restart(waiting, "b", "0"), 400, "has not finished"},
			{"after a module that failed", c, restart(first, "c", "0"), 400, `module "b" before it did not succeed`},
			{"an iteration of a script step", c, restart(first, "b", "1"), 400, "only a for loop or a branchall"},
			{"a bad iteration number", c, restart(first, "b", "x"), 400, "branch_or_iteration_n"},
		}
		for _, tc := range cases {
			r := tc.as.For(t).Do("POST", tc.path, nil)
			if r.Status != tc.status || !strings.Contains(r.Body, tc.words) {
				t.Errorf("%s: %d %s, want %d saying %q", tc.name, r.Status, r.Body, tc.status, tc.words)
			}
		}
		r := c.Do("POST", "/api/w/main/jobs/run/preview_flow", M{"value": threeSteps(combine), "args": M{},
			"restarted_from": M{"flow_job_id": uuid.NewString(), "step_id": "b"}})
		if r.Status != 404 {
			t.Errorf("preview restarted from an unknown job: %d %s, want 404", r.Status, r.Body)
		}
		var jobs []json.RawMessage
		c.MustDo("GET", "/api/w/main/jobs/list?script_path_exact="+path, nil, 200).JSON(t, &jobs)
		if len(jobs) != 3 {
			t.Errorf("%d runs of %s, want 3: a refused restart queues nothing", len(jobs), path)
		}
	})
}
