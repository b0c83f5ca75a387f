package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"vane"
)

// chaosFlow is the flow the chaos test runs beside its scripts: a step, a
// parallel for-loop of three steps that read it, and a step that sums the
// loop's results. For input n its result is 6n+6 (a = 2n; the loop gives
// [2n+1, 2n+2, 2n+3]; the sum), as a fault-free run computes it.
const chaosFlow = `{"modules": [
  {"id": "a", "value": {"type": "rawscript", "language": "bash",
    "content": "n=\"$1\"\necho $((n*2)) > result.json",
    "input_transforms": {"n": {"type": "javascript", "expr": "flow_input.n"}}}},
  {"id": "b", "value": {"type": "forloopflow", "parallel": true, "skip_failures": false,
    "parallelism": {"type": "static", "value": 3},
    "iterator": {"type": "static", "value": [1, 2, 3]},
    "modules": [{"id": "c", "value": {"type": "rawscript", "language": "bash",
      "content": "x=\"$1\"\ny=\"$2\"\necho $((x+y)) > result.json",
      "input_transforms": {"x": {"type": "javascript", "expr": "flow_input.iter.value"},
                           "y": {"type": "javascript", "expr": "results.a"}}}}]}},
  {"id": "d", "value": {"type": "rawscript", "language": "bash",
    "content": "t=\"$1\"\necho \"$t\" > result.json",
    "input_transforms": {"t": {"type": "javascript", "expr": "results.b.reduce((s, v) => s + v, 0)"}}}}
]}`

// startChaosFlows saves the chaos flow and starts one client submitting it
// with its own job ids, retrying each until acknowledged, about once a
// second.
func startChaosFlows(t *testing.T, c *Cluster) *chaosClients {
	t.Helper()
	c.Nodes[0].Client().MustDoThrough503("POST", "/api/w/main/flows/create", map[string]any{
		"path": "u/admin/chaos_flow", "summary": "chaos", "value": json.RawMessage(chaosFlow)}, 201)
	fc := &chaosClients{c: c, started: time.Now(), route: "jobs/run/f/u/admin/chaos_flow",
		args: func(client, seq int) string { return fmt.Sprintf(`{"n": %d}`, seq) }}
	fc.run(1, time.Second)
	return fc
}

// checkChaosFlows waits until every acknowledged flow has ended (none is
// left stuck once the cluster is whole), checks each one's result against
// a fault-free run's, and checks that each of its steps has exactly one
// push and one completion whose history passes the same porcupine model
// as the scripts' jobs.
func checkChaosFlows(t *testing.T, c *Cluster, fc *chaosClients, audit []vane.AuditEntry, byJob map[string][]vane.AuditEntry) {
	t.Helper()
	var acked []*submission
	for _, s := range fc.subs {
		if s.acked {
			acked = append(acked, s)
		}
	}
	if len(acked) < 5 {
		t.Fatalf("only %d flows acknowledged", len(acked))
	}
	cl := c.Nodes[c.MustLeader(15*time.Second)].Client()
	type flowJob struct {
		Result    json.RawMessage `json:"result"`
		Success   bool            `json:"success"`
		Completed bool            `json:"completed"`
	}
	results := map[string]flowJob{}
	lastPending, progressAt := -1, time.Now()
	for {
		pending := 0
		for _, s := range acked {
			if _, done := results[s.id]; done {
				continue
			}
			var r flowJob
			cl.MustDoThrough503("GET", "/api/w/main/jobs_u/completed/get_result_maybe/"+s.id, nil, 200).JSON(t, &r)
			if r.Completed {
				results[s.id] = r
			} else {
				pending++
			}
		}
		if pending == 0 {
			break
		}
		if pending != lastPending {
			lastPending, progressAt = pending, time.Now()
		}
		if time.Since(progressAt) > 90*time.Second {
			t.Fatalf("%d acknowledged flows not ended, and none ended for 90s", pending)
		}
		time.Sleep(200 * time.Millisecond) // polling the flows with a deadline
	}
	// The audit log read earlier may predate the last flows' steps: read it again.
	if late, err := c.Audit(c.MustLeader(15*time.Second), ""); err == nil {
		audit = late
		byJob = map[string][]vane.AuditEntry{}
		for _, e := range audit {
			id := e.Resource
			if strings.HasPrefix(e.Operation, "jobs.run.") {
				id = e.Parameters["id"]
			}
			if strings.HasPrefix(e.Operation, "jobs.") {
				byJob[id] = append(byJob[id], e)
			}
		}
	}
	steps := 0
	var stepSubs []*submission
	final := map[string]listedJob{}
	for _, s := range acked {
		r := results[s.id]
		if want := fmt.Sprint(6*s.seq + 6); !r.Success || string(r.Result) != want {
			t.Errorf("flow %s (n=%d): success %v, result %s; a fault-free run gives %s", s.id, s.seq, r.Success, r.Result, want)
		}
		var children []listedJob
		cl.MustDoThrough503("GET", "/api/w/main/jobs/list?per_page=1000&parent_job="+s.id, nil, 200).JSON(t, &children)
		if len(children) != 5 {
			t.Errorf("flow %s has %d step jobs, want 5 (a, three iterations of c, d)", s.id, len(children))
		}
		for _, j := range children {
			steps++
			final[j.ID] = j
			stepSubs = append(stepSubs, &submission{id: j.ID})
			pushes, completions := 0, 0
			for _, e := range byJob[j.ID] {
				switch {
				case strings.HasPrefix(e.Operation, "jobs.run."):
					pushes++
				case e.Operation == "jobs.complete", e.Operation == "jobs.expire" && e.Parameters["outcome"] != "requeued":
					completions++
				}
			}
			if pushes != 1 || completions != 1 {
				t.Errorf("step %s of flow %s: %d pushes and %d completions, want 1 and 1", j.ID, s.id, pushes, completions)
			}
		}
	}
	if res := checkStepHistories(t, stepSubs, byJob, final); res != porcupine.Ok {
		t.Errorf("porcupine: flow steps' histories are %s", res)
	}
	t.Logf("flows: %d acknowledged, all ended with a fault-free run's result; %d steps, each pushed and completed once", len(acked), steps)
}

// checkStepHistories checks the histories of flow steps (pushed by their
// flow, not by a client) with jobModel: from the audit log, then the final
// read of their restarts.
func checkStepHistories(t *testing.T, steps []*submission, byJob map[string][]vane.AuditEntry, final map[string]listedJob) porcupine.CheckResult {
	t.Helper()
	var ops []porcupine.Operation
	readAt := time.Now().UnixNano()
	for ci, s := range steps {
		at := int64(0)
		for _, e := range byJob[s.id] {
			op := jobOp{job: s.id, outcome: e.Parameters["outcome"]}
			switch {
			case strings.HasPrefix(e.Operation, "jobs.run."):
				op.kind = "push"
			case e.Operation == "jobs.claim":
				op.kind = "claim"
			case e.Operation == "jobs.complete":
				op.kind = "complete"
			case e.Operation == "jobs.expire":
				op.kind = "expire"
			case e.Operation == "jobs.cancel":
				op.kind = "cancel"
			default:
				continue
			}
			fmt.Sscan(e.Parameters["epoch"], &op.epoch)
			at = max(e.Timestamp.UnixNano(), at+1)
			ops = append(ops, porcupine.Operation{ClientId: ci, Input: op, Call: at, Return: at})
		}
		ops = append(ops, porcupine.Operation{ClientId: ci, Input: jobOp{job: s.id, kind: "read"}, Output: final[s.id].Restarts,
			Call: readAt, Return: readAt})
	}
	return porcupine.CheckOperationsTimeout(jobModel, ops, 60*time.Second)
}
