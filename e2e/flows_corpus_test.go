package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// The flow corpus: flows of every OpenFlow module kind and option, saved and
// run over HTTP against the real binary, each with its exact expected
// result and, in a comment, the Windmill source or document it follows
// (worker_flow.rs is backend/windmill-worker/src/worker_flow.rs, flows.rs
// backend/windmill-common/src/flows.rs, jobs.rs
// backend/windmill-api/src/jobs.rs, queue jobs.rs
// backend/windmill-queue/src/jobs.rs; "seeds" is shared/seeds/001, the
// Windmill docs' flows sections; "openflow" is openflow.openapi.yaml). One
// server runs the whole corpus, each case on flows, scripts and variables
// of its own.

// runMode is how a case's flow is started.
type runMode int

const (
	byPath     runMode = iota // flows/create, jobs/run/f (201 and the id), then get_result_maybe
	waitResult                // flows/create, jobs/run_wait_result/f (200, or 422 for a failure)
	preview                   // jobs/run/preview_flow, then get_result_maybe
)

// flowCase is one flow of the corpus.
type flowCase struct {
	name    string
	mode    runMode
	flow    M
	args    M
	success bool
	want    string // the flow's exact result, JSON; "" when check reads it
	// check looks further: the flow_status, the step jobs, their logs.
	check func(t *testing.T, c *Client, flowID string, result json.RawMessage)
}

// TestFlowsCorpus runs the corpus on one Bash server.
func TestFlowsCorpus(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{Args: []string{"--workers", "6"}})
	admin := srv.Client()
	greetV1 := setupCorpus(t, admin)

	// Every flow of the table is started first, then each is checked in
	// its own subtest: the server runs them all at once.
	cases := corpusCases(greetV1)
	runs := make([]*caseRun, len(cases))
	for i, fc := range cases {
		runs[i] = startCase(t, admin, fc)
	}
	t.Run("runs", func(t *testing.T) {
		for i, fc := range cases {
			t.Run(fc.name, func(t *testing.T) { checkCase(t, admin.For(t), fc, runs[i]) })
		}
	})
	t.Run("suspend", func(t *testing.T) { suspendCases(t, admin) })
	t.Run("cancel", func(t *testing.T) { cancelCases(t, admin) })
	t.Run("routes", func(t *testing.T) { routeCases(t, admin) })
	t.Run("bad input", func(t *testing.T) { badInputCases(t, admin) })
	t.Run("crud", func(t *testing.T) { crudCases(t, admin) })
	t.Run("permissions", func(t *testing.T) { permissionCases(t, admin) })
}

// setupCorpus saves what the cases call: two versions of a script, an
// inner flow, a variable, a resource that refers to it, and the counters
// the retry cases keep. It returns the hash of the script's first version.
func setupCorpus(t *testing.T, c *Client) (greetV1 string) {
	greetV1 = c.MustSaveScript("f/corpus/greet", "bash", "name=\"$1\"\necho \"v1 $name\"\n")
	c.MustSaveScript("f/corpus/greet", "bash", "name=\"$1\"\necho \"v2 $name\"\n")
	c.MustSaveFlow("f/corpus/inner", flowValue(nil,
		bash("i", "x=\"$1\"\necho \"inner $x\"\n", in{"x": "flow_input.x"})))
	c.MustDo("POST", "/api/w/main/variables/create", M{"path": "f/corpus/secret", "value": "s3cr3t", "is_secret": true, "description": ""}, 201)
	c.MustDo("POST", "/api/w/main/resources/create", M{"path": "f/corpus/db", "resource_type": "any", "description": "",
		"value": M{"host": "db.internal", "password": "$var:f/corpus/secret"}}, 201)
	for _, p := range []string{"f/corpus/tries_constant", "f/corpus/tries_exponential"} {
		c.MustDo("POST", "/api/w/main/variables/create", M{"path": p, "value": "0", "is_secret": false, "description": ""}, 201)
	}
	return greetV1
}

// caseRun is a started case: its flow job, or the answer run_wait_result
// will give.
type caseRun struct {
	path   string
	id     string
	answer <-chan asyncResponse
}

// casePath is where case name's flow is saved.
func casePath(name string) string {
	return "f/corpus/" + strings.NewReplacer(" ", "_", ",", "").Replace(name)
}

// startCase saves fc's flow and starts it, as fc.mode says.
func startCase(t *testing.T, c *Client, fc flowCase) *caseRun {
	t.Helper()
	r := &caseRun{path: casePath(fc.name)}
	args := fc.args
	if args == nil {
		args = M{}
	}
	switch fc.mode {
	case byPath:
		c.MustSaveFlow(r.path, fc.flow)
		r.id = c.MustRunFlow(r.path, args)
	case waitResult:
		c.MustSaveFlow(r.path, fc.flow)
		r.answer = c.DoAsync("POST", "/api/w/main/jobs/run_wait_result/f/"+r.path, args)
	case preview:
		r.id = c.MustPreviewFlow(fc.flow, args)
	}
	return r
}

// checkCase waits for r, fc's run, to end and checks its result.
func checkCase(t *testing.T, c *Client, fc flowCase, r *caseRun) {
	var (
		result  json.RawMessage
		success bool
	)
	if r.answer != nil {
		var a asyncResponse
		select {
		case a = <-r.answer:
		case <-time.After(2 * time.Minute):
			t.Fatal("run_wait_result did not answer within 2 minutes")
		}
		// Spec section 1.3 (result_to_response): 200 with the result, 422
		// with it for a failed job.
		if a.err != nil || a.Status != 200 && a.Status != 422 {
			t.Fatalf("run_wait_result: %d %s %v", a.Status, a.Body, a.err)
		}
		result, success = json.RawMessage(a.Body), a.Status == 200
		r.id = latestFlowJob(t, c, r.path)
	} else {
		result, success = c.WaitJob(r.id, 2*time.Minute)
	}
	if success != fc.success {
		t.Errorf("success = %v, want %v; result %s", success, fc.success, compact(result))
	}
	if fc.want != "" && !jsonEqual(result, []byte(fc.want)) {
		t.Errorf("result\n got %s\nwant %s", compact(result), compact([]byte(fc.want)))
	}
	if fc.check != nil {
		fc.check(t, c, r.id, result)
	}
}

// latestFlowJob is the id of the newest job of the flow at path.
func latestFlowJob(t *testing.T, c *Client, path string) string {
	t.Helper()
	var list []corpusJob
	c.MustDo("GET", "/api/w/main/jobs/list?script_path_exact="+path, nil, 200).JSON(t, &list)
	if len(list) == 0 {
		t.Fatalf("no job of flow %s", path)
	}
	return list[0].ID
}

// noJobFor fails unless none of flow job id's steps ran module key.
func noJobFor(t *testing.T, c *Client, id string, keys ...string) {
	t.Helper()
	for _, j := range c.MustStepJobs(id) {
		for _, k := range keys {
			if j.FlowStepKey == k {
				t.Errorf("module %s ran a job (%s), want none", k, j.ID)
			}
		}
	}
}

// wantKeys fails unless flow job id's step jobs are exactly keys.
func wantKeys(t *testing.T, c *Client, id string, keys ...string) []corpusJob {
	t.Helper()
	jobs := c.MustStepJobs(id)
	sort.Strings(keys)
	if got := stepKeys(jobs); strings.Join(got, " ") != strings.Join(keys, " ") {
		t.Errorf("step jobs %v, want %v", got, keys)
	}
	return jobs
}

// execErr is a failed Bash step's result, as vane's runtime shapes
// Windmill's ExecutionErr: the exit status and the last lines of output.
func execErr(status int, lines ...string) string {
	b, _ := json.Marshal(M{"error": M{"name": "ExecutionErr", "stack": "",
		"message": fmt.Sprintf("bash: exit status %d, last %d logs lines:\n%s", status, len(lines), strings.Join(lines, "\n"))}})
	return string(b)
}

// counterStep fails until it has run three times, counting in the variable
// at path through the API.
const counterStep = `p="$1"
` + apiCall + `v=$(api GET "variables/get_value/$p")
n=$(( ${v//\"/} + 1 ))
api POST "variables/update/$p" -d "{\"value\": \"$n\"}" >/dev/null
if [ "$n" -lt 3 ]; then echo "attempt $n fails"; exit 1; fi
echo "attempt $n"
`

// pairStep is a parallel loop's body: iteration i announces itself in a
// variable and waits for its partner (i xor 1) to have started, so it
// succeeds only if the two run at the same time.
const pairStep = `i="$1"
` + apiCall + `api POST variables/create -d "{\"path\": \"f/corpus/pair_$i\", \"value\": \"started\", \"is_secret\": false, \"description\": \"\"}" >/dev/null
partner=$(( i ^ 1 ))
for k in $(seq 600); do
  [ "$(api GET "variables/exists/f/corpus/pair_$partner")" = true ] && break
  sleep 0.05
done
[ "$(api GET "variables/exists/f/corpus/pair_$partner")" = true ] || { echo "iteration $partner did not run beside $i"; exit 1; }
echo $(( i * 10 )) > result.json
`

// maxOverlap is the most jobs running at one instant, from their
// recorded start and end (the store's clock, which never goes back).
func maxOverlap(t *testing.T, jobs []corpusJob) int {
	t.Helper()
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, j := range jobs {
		if j.StartedAt == nil || j.CompletedAt == nil {
			t.Fatalf("job %s has no start or end", j.ID)
		}
		edges = append(edges, edge{*j.StartedAt, 1}, edge{*j.CompletedAt, -1})
	}
	sort.Slice(edges, func(a, b int) bool {
		if edges[a].at.Equal(edges[b].at) {
			return edges[a].delta < edges[b].delta // an end before a start at the same instant
		}
		return edges[a].at.Before(edges[b].at)
	})
	n, most := 0, 0
	for _, e := range edges {
		n += e.delta
		most = max(most, n)
	}
	return most
}

// delayOf is how long after its creation job j was scheduled.
func delayOf(j corpusJob) time.Duration { return j.ScheduledFor.Sub(j.CreatedAt) }

// corpusCases are the cases that run a flow to its end; greetV1 is the
// hash of f/corpus/greet's first version.
func corpusCases(greetV1 string) []flowCase {
	greet := "name=\"$1\"\ncount=\"$2\"\necho \"{\\\"greeting\\\": \\\"hi $name\\\", \\\"count\\\": $count}\" > result.json\n"
	echoArg := "v=\"$1\"\necho \"$v\"\n"
	toJSON := "v=\"$1\"\necho \"$v\" > result.json\n"
	return []flowCase{
		// --- Leaves -----------------------------------------------------
		{name: "rawscript bash reads flow_input", mode: byPath,
			flow: flowValue(nil, bash("a", greet, in{"name": "flow_input.name", "count": "flow_input.n"})),
			args: M{"name": "ann", "n": 3}, success: true,
			// seeds 001 Flows: a flow is a sequence of steps, each a script;
			// worker_flow.rs: the flow's result is its last module's result;
			// spec section 3: flow_input is the flow's args.
			want: `{"greeting": "hi ann", "count": 3}`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				jobs := wantKeys(t, c, id, "a@0")
				// A step is a job of the flow: kind flowscript (Windmill's
				// job_kind for an inline step), its parent the flow, path
				// <flow path>/<module id>; its logs are its own.
				if j := jobs[0]; j.JobKind != "flowscript" || j.ParentJob != id || j.ScriptPath != "f/corpus/rawscript_bash_reads_flow_input/a" || j.FlowStepID != "a" {
					t.Errorf("step job: kind %q parent %q path %q step %q", j.JobKind, j.ParentJob, j.ScriptPath, j.FlowStepID)
				}
				if logs := c.MustGetJob(jobs[0].ID).Logs; logs != "" {
					t.Errorf("the step wrote result.json and printed nothing, logs %q", logs)
				}
				f := c.MustGetJob(id)
				// A flow job in jobs_u/get: job_kind flow, one flow_status
				// entry per module (openapi FlowStatus).
				if f.JobKind != "flow" || f.FlowStatus == nil || len(f.FlowStatus.Modules) != 1 ||
					f.FlowStatus.Modules[0].Type != "Success" || f.FlowStatus.Modules[0].Job != jobs[0].ID {
					t.Errorf("flow job: kind %q flow_status %+v", f.JobKind, f.FlowStatus)
				}
			}},
		{name: "script by path runs its latest version", mode: waitResult,
			flow:    flowValue(nil, scriptStep("a", "f/corpus/greet", "", in{"name": static("ann")})),
			success: true,
			// openflow PathScript{path}: worker_flow.rs script_path_to_payload
			// runs the path's latest deployed version.
			want: `"v2 ann"`},
		{name: "script by hash runs that version", mode: byPath,
			flow:    flowValue(nil, scriptStep("a", "f/corpus/greet", greetV1, in{"name": static("ann")})),
			success: true,
			// openflow PathScript{hash}: a pinned hash runs that version, not
			// the path's latest (worker_flow.rs script_to_payload).
			want: `"v1 ann"`},
		{name: "inner flow", mode: byPath,
			flow: flowValue(nil, flowStep("a", "f/corpus/inner", in{"x": "flow_input.y + 1"})),
			args: M{"y": 41}, success: true,
			// openflow PathFlow{path, input_transforms}: worker_flow.rs
			// flow_to_payload runs the saved flow as a job of the step; its
			// result is the inner flow's.
			want: `"inner 42"`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				jobs := wantKeys(t, c, id, "a@0")
				if jobs[0].JobKind != "flow" || jobs[0].ScriptPath != "f/corpus/inner" {
					t.Errorf("inner flow's job: kind %q path %q", jobs[0].JobKind, jobs[0].ScriptPath)
				}
				inner := c.MustStepJobs(jobs[0].ID)
				if len(inner) != 1 || inner[0].RootJob != id {
					t.Errorf("the inner flow's step: %+v, want one with root job %s", inner, id)
				}
			}},
		{name: "identity passes the previous result", mode: preview,
			flow:    flowValue(nil, bash("a", toJSON, in{"v": `JSON.stringify({k: flow_input.k})`}), identity("b")),
			args:    M{"k": [2]int{1, 2}},
			success: true,
			// worker_flow.rs: an identity module returns its previous_result.
			want: `{"k": [1, 2]}`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				wantKeys(t, c, id, "a@0") // vane resolves identity without a job (flows/DESIGN.md)
			}},
		{name: "empty flow returns its args", mode: preview,
			flow: flowValue(nil), args: M{"a": 1}, success: true,
			// worker_flow.rs push_next_flow_job: a flow without modules
			// completes with its args.
			want: `{"a": 1}`},

		// --- Loops ------------------------------------------------------
		{name: "for loop with iter value and index", mode: byPath,
			flow: flowValue(nil, forLoop("l", "flow_input.items", false,
				bash("x", "v=\"$1\"\ni=\"$2\"\necho \"$i:$v\"\n", in{"v": "flow_input.iter.value", "i": "flow_input.iter.index"}))),
			args: M{"items": []string{"a", "b", "c"}}, success: true,
			// seeds 001: a for loop runs its flow for each element; spec
			// section 3: flow_input.iter.{value,index} in the loop; the
			// loop's result is the array of iteration results.
			want: `["0:a", "1:b", "2:c"]`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				wantKeys(t, c, id, "l@0#0/x@0", "l@0#1/x@0", "l@0#2/x@0")
			}},
		{name: "for loop skip_failures keeps the error", mode: byPath,
			flow: flowValue(nil, forLoop("l", "flow_input.items", true,
				bash("x", "v=\"$1\"\nif [ \"$v\" = b ]; then echo \"bad $v\"; exit 1; fi\necho \"ok $v\"\n", in{"v": "flow_input.iter.value"}))),
			args: M{"items": []string{"a", "b", "c"}}, success: true,
			// worker_flow.rs: with skip_failures a failed iteration does not
			// stop the loop; its error stays in the result array.
			want: `["ok a", ` + execErr(1, "bad b") + `, "ok c"]`},
		{name: "for loop without skip_failures stops", mode: waitResult,
			flow: flowValue(nil, forLoop("l", "flow_input.items", false,
				bash("x", "v=\"$1\"\nif [ \"$v\" = b ]; then echo \"bad $v\"; exit 1; fi\necho \"ok $v\"\n", in{"v": "flow_input.iter.value"}))),
			args: M{"items": []string{"a", "b", "c"}}, success: false,
			// worker_flow.rs: a failed iteration ends a sequential loop as a
			// Failure whose result is the iterations so far; no more run.
			want: `["ok a", ` + execErr(1, "bad b") + `]`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				noJobFor(t, c, id, "l@0#2/x@0")
			}},
		{name: "parallel for loop with parallelism", mode: byPath,
			flow: flowValue(nil, with(forLoop("l", "[0, 1, 2, 3]", false, bash("x", pairStep, in{"i": "flow_input.iter.value"})),
				M{"value.parallel": true, "value.parallelism": static(2)})),
			success: true,
			// openflow ForloopFlow{parallel, parallelism}: worker_flow.rs
			// runs the iterations at once, parallelism at a time; the result
			// keeps the iterator's order. Each pair (0,1), (2,3) only ends
			// when both run together.
			want: `[0, 10, 20, 30]`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				jobs := wantKeys(t, c, id, "l@0#0/x@0", "l@0#1/x@0", "l@0#2/x@0", "l@0#3/x@0")
				if n := maxOverlap(t, jobs); n != 2 {
					t.Errorf("at most %d iterations ran at once, want 2 (parallelism)", n)
				}
				if m := c.MustGetJob(id).FlowStatus.Modules[0]; !m.Parallel || len(m.FlowJobs) != 4 {
					t.Errorf("loop's flow_status: %+v", m)
				}
			}},
		{name: "while loop stopped by stop_after_if", mode: byPath,
			flow: flowValue(nil, whileLoop("w",
				with(bash("x", "i=\"$1\"\necho $(( i * 10 )) > result.json\n", in{"i": "flow_input.iter.index"}),
					M{"stop_after_if": M{"expr": "result >= 20"}}))),
			success: true,
			// openflow WhileloopFlow has no condition: a module's
			// stop_after_if breaks it (worker_flow.rs: a stop inside an
			// iteration breaks the loop); its result is every iteration's.
			want: `[0, 10, 20]`},
		{name: "stop_after_all_iters_if stops the flow", mode: preview,
			flow: flowValue(nil,
				with(forLoop("l", "[1, 2]", false, bash("x", echoArg, in{"v": "flow_input.iter.value"})),
					M{"stop_after_all_iters_if": M{"expr": "result.length == 2"}}),
				bash("after", "echo after\n", nil)),
			success: true,
			// worker_flow.rs: stop_after_all_iters_if is evaluated with the
			// loop's array as result once it ends, and stops the flow there.
			want: `["1", "2"]`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				noJobFor(t, c, id, "after@0")
			}},

		// --- Branches ---------------------------------------------------
		branchOne("branchone first truthy expr", 20, `"big"`, `{"type": "branch", "branch": 0}`),
		branchOne("branchone second expr", 7, `"medium"`, `{"type": "branch", "branch": 1}`),
		branchOne("branchone default", 1, `"small"`, `{"type": "default"}`),
		{name: "branchall parallel with skip_failure", mode: byPath,
			flow: flowValue(nil, M{"id": "b", "value": M{"type": "branchall", "parallel": true, "branches": []M{
				{"modules": []M{bash("x", "echo one\n", nil)}},
				{"skip_failure": true, "modules": []M{bash("y", "echo two\nexit 2\n", nil)}},
				{"modules": []M{bash("z", "echo three\n", nil)}},
			}}}),
			success: true,
			// seeds 001: branch-all collects each branch's result in an
			// array; worker_flow.rs compute_skip_branchall_failure: a failed
			// branch with skip_failure keeps its error there.
			want: `["one", ` + execErr(2, "two") + `, "three"]`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				wantKeys(t, c, id, "b@0#0/x@0", "b@0#1/y@0", "b@0#2/z@0")
			}},
		{name: "branchall sequential failure stops", mode: waitResult,
			flow: flowValue(nil, M{"id": "b", "value": M{"type": "branchall", "parallel": false, "branches": []M{
				{"modules": []M{bash("x", "echo one\n", nil)}},
				{"modules": []M{bash("y", "echo two\nexit 2\n", nil)}},
				{"modules": []M{bash("z", "echo three\n", nil)}},
			}}}),
			success: false,
			// worker_flow.rs: a sequential branchall goes past a branch only
			// if it succeeded or has skip_failure (default false).
			want: `["one", ` + execErr(2, "two") + `]`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				noJobFor(t, c, id, "b@0#2/z@0")
			}},

		// --- Input transforms -------------------------------------------
		{name: "transforms static, results, previous_result", mode: byPath,
			flow: flowValue(nil,
				bash("a", "echo '{\"n\": 3}' > result.json\n", nil),
				bash("b", "echo '\"ignored\"' > result.json\n", nil),
				bash("c", "p=\"$1\"\nr=\"$2\"\ns=\"$3\"\nf=\"$4\"\necho \"$p $r $s $f\"\n",
					in{"p": "previous_result", "r": "results.a.n * 2", "s": static("st"), "f": "flow_input.who"})),
			args: M{"who": "ann"}, success: true,
			// spec section 3 (js_eval.rs): previous_result is the last step's
			// result, results.<id> any earlier one, static values are passed
			// as they are.
			want: `"ignored 6 st ann"`},
		{name: "transforms variable and resource", mode: byPath,
			flow: flowValue(nil, bash("a", "v=\"$1\"\nr=\"$2\"\necho \"{\\\"v\\\": \\\"$v\\\", \\\"r\\\": $r}\" > result.json\n",
				in{"v": "variable('f/corpus/secret')", "r": "JSON.stringify(resource('f/corpus/db'))"})),
			success: true,
			// spec section 3: variable(path) and resource(path) in
			// expressions (js_eval.rs op_variable, op_resource); a resource's
			// $var: references are resolved (get_value_interpolated).
			want: `{"v": "s3cr3t", "r": {"host": "db.internal", "password": "s3cr3t"}}`},

		// --- Module options ---------------------------------------------
		{name: "stop_after_if ends the flow", mode: byPath,
			flow: flowValue(nil,
				with(bash("a", "echo 5 > result.json\n", nil), M{"stop_after_if": M{"expr": "result > 2"}}),
				bash("b", "echo b\n", nil)),
			success: true,
			// openflow StopAfterIf; worker_flow.rs: a true stop_after_if ends
			// the flow with the step's result.
			want: `5`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				noJobFor(t, c, id, "b@0")
				if c.MustGetJob(id).IsSkipped {
					t.Error("a flow stopped without skip_if_stopped is not skipped")
				}
			}},
		{name: "stop_after_if skip_if_stopped", mode: byPath,
			flow: flowValue(nil,
				with(bash("a", "echo '[]' > result.json\n", nil), M{"stop_after_if": M{"expr": "result.length == 0", "skip_if_stopped": true}}),
				bash("b", "echo b\n", nil)),
			success: true,
			// seeds 001 Trigger scripts: a first step that finds nothing new
			// stops the flow early; worker_flow.rs: skip_if_stopped completes
			// the flow job as skipped.
			want: `[]`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				if !c.MustGetJob(id).IsSkipped {
					t.Error("the flow is not is_skipped")
				}
			}},
		{name: "stop_after_if error_message fails", mode: preview,
			flow: flowValue(M{"failure_module": bash("failure", "echo handled\n", nil)},
				with(bash("a", "echo 5 > result.json\n", nil), M{"stop_after_if": M{"expr": "result > 2", "error_message": "too big"}}),
				bash("b", "echo b\n", nil)),
			success: false,
			// worker_flow.rs get_stop_after_if_data: with error_message the
			// flow fails with "Flow early stop: <message>", and no error
			// handler runs.
			want: `"Flow early stop: too big"`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				noJobFor(t, c, id, "b@0", "failure@0")
			}},
		{name: "skip_if passes previous_result", mode: byPath,
			flow: flowValue(nil,
				bash("a", "echo '{\"skip\": true}' > result.json\n", nil),
				with(bash("b", "exit 1\n", nil), M{"skip_if": M{"expr": "previous_result.skip"}}),
				bash("c", "p=\"$1\"\necho \"c $p\"\n", in{"p": "JSON.stringify(previous_result)"})),
			success: true,
			// worker_flow.rs: a skipped module succeeds with its
			// previous_result, marked skipped in flow_status.
			want: `"c {\"skip\":true}"`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				noJobFor(t, c, id, "b@0")
				if m := c.MustGetJob(id).FlowStatus.Modules[1]; m.ID != "b" || m.Type != "Success" || !m.Skipped {
					t.Errorf("skipped module's flow_status: %+v", m)
				}
			}},
		{name: "sleep delays the next step", mode: byPath,
			flow: flowValue(nil,
				with(bash("a", "echo a\n", nil), M{"sleep": static(1)}),
				bash("b", "echo b\n", nil)),
			success: true,
			// openflow FlowModule.sleep (seconds): worker_flow.rs schedules
			// the next module's job that much later (scheduled_for).
			want: `"b"`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				for _, j := range wantKeys(t, c, id, "a@0", "b@0") {
					if want := map[string]time.Duration{"a@0": 0, "b@0": time.Second}[j.FlowStepKey]; delayOf(j) != want {
						t.Errorf("%s scheduled %s after its creation, want %s", j.FlowStepKey, delayOf(j), want)
					}
				}
			}},
		{name: "timeout fails the step", mode: byPath,
			flow:    flowValue(nil, with(bash("a", "sleep 30\necho late\n", nil), M{"timeout": static(1)})),
			success: false,
			// openflow FlowModule.timeout (seconds): the step job is killed
			// past it and fails; vane's runtime names the error Timeout.
			check: func(t *testing.T, c *Client, id string, result json.RawMessage) {
				var r struct {
					Error struct{ Name, Message string } `json:"error"`
				}
				if json.Unmarshal(result, &r) != nil || r.Error.Name != "Timeout" ||
					!regexp.MustCompile(`^Job timed out \(timeout\) after \d+(\.\d+)?m?s$`).MatchString(r.Error.Message) {
					t.Errorf("result %s, want a Timeout error", compact(result))
				}
			}},
		{name: "retry constant", mode: byPath,
			flow: flowValue(nil, with(bash("a", counterStep, in{"p": static("f/corpus/tries_constant")}),
				M{"retry": M{"constant": M{"attempts": 2, "seconds": 0}}})),
			success: true,
			// seeds 001 Retries: a failing step is retried until no attempt
			// is left; flows.rs Retry: constant attempts, seconds apart.
			want: `"attempt 3"`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				jobs := wantKeys(t, c, id, "a@0", "a@1", "a@2")
				m := c.MustGetJob(id).FlowStatus.Modules[0]
				if len(m.FailedRetries) != 2 || m.FailedRetries[0] != jobs[0].ID || m.FailedRetries[1] != jobs[1].ID || m.Job != jobs[2].ID {
					t.Errorf("flow_status after retries: %+v, jobs %v", m, stepKeys(jobs))
				}
			}},
		{name: "retry exponential", mode: byPath,
			flow: flowValue(nil, with(bash("a", counterStep, in{"p": static("f/corpus/tries_exponential")}),
				M{"retry": M{"exponential": M{"attempts": 2, "multiplier": 1, "seconds": 1}}})),
			success: true,
			// flows.rs Retry::interval: the n-th exponential retry waits
			// multiplier * seconds^n seconds: 1 s, then 1 s.
			want: `"attempt 3"`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				for _, j := range wantKeys(t, c, id, "a@0", "a@1", "a@2") {
					if want := map[string]time.Duration{"a@0": 0, "a@1": time.Second, "a@2": time.Second}[j.FlowStepKey]; delayOf(j) != want {
						t.Errorf("%s scheduled %s after its creation, want %s", j.FlowStepKey, delayOf(j), want)
					}
				}
			}},
		{name: "failure_module recovers", mode: byPath,
			flow: flowValue(M{"failure_module": bash("failure", "name=\"$1\"\nline=\"$2\"\necho \"{\\\"handled\\\": \\\"$name\\\", \\\"last_line\\\": \\\"$line\\\"}\" > result.json\n",
				in{"name": "previous_result.error.name", "line": "previous_result.error.message.split('\\n').pop()"})},
				bash("a", "echo nope\nexit 3\n", nil)),
			success: true,
			// seeds 001 Error handlers: an error handler that does not
			// rethrow recovers the flow, which succeeds; previous_result is
			// the error.
			want: `{"handled": "ExecutionErr", "last_line": "nope"}`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				fs := c.MustGetJob(id).FlowStatus
				if fs.Modules[0].Type != "Failure" || fs.FailureModule == nil || fs.FailureModule.Type != "Success" || fs.FailureModule.ParentModule != "a" {
					t.Errorf("flow_status: %+v failure_module %+v", fs.Modules, fs.FailureModule)
				}
			}},
		{name: "failure_module rethrows", mode: waitResult,
			flow: flowValue(M{"failure_module": bash("failure", "echo still failing\nexit 4\n", nil)},
				bash("a", "echo nope\nexit 3\n", nil)),
			success: false,
			// seeds 001 Error handlers: rethrow an error to have the flow
			// listed as failed; its result is the handler's error.
			want: execErr(4, "still failing")},
		{name: "preprocessor_module in bash", mode: byPath,
			flow: flowValue(M{"preprocessor_module": bash("preprocessor", "x=\"$1\"\necho \"{\\\"y\\\": \\\"pre $x\\\"}\" > result.json\n", in{"x": "flow_input.x"})},
				bash("a", "y=\"$1\"\necho \"a $y\"\n", in{"y": "flow_input.y"})),
			args: M{"x": "in"}, success: false,
			// openflow FlowValue.preprocessor_module: its step calls the
			// script's preprocessor function (worker_flow.rs: PreprocessorStep
			// sets ENTRYPOINT_OVERRIDE), which only TypeScript and Python have
			// (Windmill docs, "Preprocessors"): a Bash one fails the flow
			// before its modules. Deno and Python preprocessors:
			// TestFlows_Preprocessor.
			want: `{"error": {"name": "UnsupportedEntrypoint", "stack": "", "message": "bash scripts have no preprocessor function: vane calls only main in bash; a preprocessor must be written in TypeScript (deno) or Python"}}`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				wantKeys(t, c, id, "preprocessor@0")
			}},
		{name: "continue_on_error", mode: byPath,
			flow: flowValue(nil,
				with(bash("a", "echo boom\nexit 1\n", nil), M{"continue_on_error": true}),
				bash("b", "e=\"$1\"\necho \"got $e\"\n", in{"e": "previous_result.error.name"})),
			success: true,
			// openflow FlowModule.continue_on_error: worker_flow.rs passes
			// the error on as the next step's previous_result.
			want: `"got ExecutionErr"`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				// Each step job keeps its own output as its logs.
				for _, j := range wantKeys(t, c, id, "a@0", "b@0") {
					want := map[string]string{"a@0": "boom\n", "b@0": "got ExecutionErr\n"}[j.FlowStepKey]
					if logs := c.MustGetJob(j.ID).Logs; logs != want {
						t.Errorf("logs of %s: %q, want %q", j.FlowStepKey, logs, want)
					}
				}
			}},
		{name: "mock", mode: preview,
			flow:    flowValue(nil, with(bash("a", "exit 1\n", nil), M{"mock": M{"enabled": true, "return_value": M{"m": 1}}})),
			success: true,
			// openflow FlowModule.mock{enabled, return_value}: the module is
			// not run, its result is return_value.
			want: `{"m": 1}`,
			check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
				noJobFor(t, c, id, "a@0")
			}},
	}
}

// branchOne is a branchone case for input n: the first branch whose expr
// is true (n > 10, then n > 5), else the default; chosen is the module's
// branch_chosen in flow_status.
func branchOne(name string, n int, want, chosen string) flowCase {
	return flowCase{name: name, mode: waitResult,
		flow: flowValue(nil, M{"id": "b", "value": M{"type": "branchone",
			"branches": []M{
				{"expr": "flow_input.n > 10", "modules": []M{bash("x", "echo big\n", nil)}},
				{"expr": "flow_input.n > 5", "modules": []M{bash("y", "echo medium\n", nil)}},
			},
			"default": []M{bash("z", "echo small\n", nil)}}}),
		args: M{"n": n}, success: true,
		// seeds 001: branch to the first subflow whose predicate is
		// truthy, in order; worker_flow.rs BranchOne: else the default,
		// recorded as flow_status branch_chosen {type: branch, branch} or
		// {type: default}.
		want: want,
		check: func(t *testing.T, c *Client, id string, _ json.RawMessage) {
			m := c.MustGetJob(id).FlowStatus.Modules[0]
			if !jsonEqual(m.BranchChosen, []byte(chosen)) {
				t.Errorf("branch_chosen %s, want %s", m.BranchChosen, chosen)
			}
		}}
}
