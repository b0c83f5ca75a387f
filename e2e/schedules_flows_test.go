package e2e

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestSchedules_TriggerFlow is the seeds' trigger-script pattern end to end:
// a schedule runs a flow every second whose first step (Python, Windmill's
// wmill client) reads the state it kept at its WM_STATE_PATH, writes the new
// one, and returns whether anything changed; the flow stops early
// (stop_after_if) when nothing did, and runs its next step otherwise.
func TestSchedules_TriggerFlow(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{Args: []string{"--languages", "bash,python3"}})
	c := srv.Client()
	watch := `import wmill


def main():
    seen = wmill.get_state() or 0
    seen += 1
    wmill.set_state(seen)
    return {"seen": seen, "new": seen <= 2}
`
	flow := map[string]any{"modules": []any{
		map[string]any{"id": "watch", "value": map[string]any{"type": "rawscript", "language": "python3", "content": watch,
			"input_transforms": map[string]any{}, "is_trigger": true},
			"stop_after_if": map[string]any{"expr": "!result.new", "skip_if_stopped": true}},
		map[string]any{"id": "act", "value": map[string]any{"type": "rawscript", "language": "bash",
			"content": "n=\"$1\"\necho \"acting on $n\"", "input_transforms": map[string]any{
				"n": map[string]any{"type": "javascript", "expr": "results.watch.seen"}}}},
	}}
	c.MustDo("POST", "/api/w/main/flows/create", map[string]any{"path": "u/admin/trigger_flow", "summary": "trigger", "value": flow}, 201)
	// A first Python job starts the interpreter's worker, so that runs two
	// seconds apart never overlap (overlapping runs would both read the
	// state before either wrote it).
	warm := c.MustDo("POST", "/api/w/main/jobs/run/preview", map[string]any{"language": "python3", "content": "def main():\n    return 1\n", "args": map[string]any{}}, 201).Body
	c.WaitJob(warm, 120*time.Second)
	// no_flow_overlap, as a trigger flow wants: a run that starts while the
	// previous one still runs (a slow tick on a loaded machine) ends at once
	// without reading the state, instead of reading it before the previous
	// run wrote it.
	c.MustDo("POST", "/api/w/main/schedules/create", map[string]any{"path": "u/admin/every_second_flow", "schedule": "*/2 * * * * *",
		"timezone": "UTC", "script_path": "u/admin/trigger_flow", "is_flow": true, "args": map[string]any{}, "enabled": true,
		"no_flow_overlap": true}, 201)
	var runs []scheduledJob
	waitFor(t, 120*time.Second, "four runs of the scheduled flow", func() bool {
		runs = nil
		for _, r := range jobsOfSchedule(t, c, "u/admin/trigger_flow", "u/admin/every_second_flow", true) {
			if !strings.Contains(string(r.Result), "not allowed to overlap") {
				runs = append(runs, r)
			}
		}
		return len(runs) >= 4
	})
	c.MustDo("POST", "/api/w/main/schedules/setenabled/u/admin/every_second_flow", map[string]any{"enabled": false}, 200)
	// By tick: the first two runs saw something new and acted; the later
	// ones stopped after the trigger step, skipped.
	sort.Slice(runs, func(i, k int) bool { return runs[i].ScheduledFor.Before(runs[k].ScheduledFor) })
	for i, r := range runs {
		t.Logf("run %d (tick %s): %s", i+1, r.ScheduledFor.Format(time.TimeOnly), r.Result)
	}
	for i, r := range runs {
		var got any
		_ = json.Unmarshal(r.Result, &got)
		seen := i + 1
		if !r.Success {
			t.Fatalf("run %d of the scheduled flow failed: %s", seen, r.Result)
		}
		switch {
		case seen <= 2:
			if want := "acting on " + jsonNumber(seen); got != want {
				t.Errorf("run %d: result %s, want %q (something new: the flow acts)", seen, r.Result, want)
			}
		default:
			if m, ok := got.(map[string]any); !ok || m["new"] != false {
				t.Errorf("run %d: result %s, want the trigger step's, stopped early", seen, r.Result)
			}
		}
	}
}

// TestSchedules_NoFlowOverlap: a flow scheduled every second whose run
// takes three seconds, with no_flow_overlap: the runs that start while
// another runs end at once, successfully, with Windmill's result naming the
// running one (windmill-worker worker_flow.rs, push_next_flow_job), and no
// two runs that did the work overlapped. Without it, they overlap.
func TestSchedules_NoFlowOverlap(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{Args: []string{"--languages", "bash"}})
	c := srv.Client()
	flow := map[string]any{"modules": []any{
		map[string]any{"id": "slow", "value": map[string]any{"type": "rawscript", "language": "bash",
			"content": "sleep 3\necho done", "input_transforms": map[string]any{}}},
	}}
	c.MustDo("POST", "/api/w/main/flows/create", map[string]any{"path": "u/admin/slow_flow", "summary": "slow", "value": flow}, 201)
	for _, tc := range []struct {
		name      string
		noOverlap bool
	}{{"no_flow_overlap", true}, {"overlap allowed", false}} {
		t.Run(tc.name, func(t *testing.T) {
			path := "u/admin/slow_every_second_" + strings.ReplaceAll(tc.name, " ", "_")
			c.MustDo("POST", "/api/w/main/schedules/create", map[string]any{"path": path, "schedule": "* * * * * *",
				"timezone": "UTC", "script_path": "u/admin/slow_flow", "is_flow": true, "args": map[string]any{}, "enabled": true,
				"no_flow_overlap": tc.noOverlap}, 201)
			var worked, refused int
			waitFor(t, 120*time.Second, "three runs that did the work", func() bool {
				worked, refused = 0, 0
				for _, r := range jobsOfSchedule(t, c, "u/admin/slow_flow", path, true) {
					var got string
					_ = json.Unmarshal(r.Result, &got)
					switch {
					case !r.Success:
						t.Fatalf("run %s failed: %s", r.ID, r.Result)
					case got == "done":
						worked++
					case strings.HasPrefix(got, "not allowed to overlap with ") && strings.HasSuffix(got, ", scheduling next iteration"):
						refused++
					default:
						t.Fatalf("run %s: result %s", r.ID, r.Result)
					}
				}
				return worked >= 3
			})
			c.MustDo("POST", "/api/w/main/schedules/setenabled/"+path, map[string]any{"enabled": false}, 200)
			t.Logf("%d runs did the work, %d were refused as overlapping", worked, refused)
			if !tc.noOverlap && refused > 0 {
				t.Fatalf("a schedule without no_flow_overlap refused %d runs", refused)
			}
			if tc.noOverlap && refused == 0 {
				t.Fatal("with no_flow_overlap, a run every second of a 3 s flow refused none")
			}
		})
	}
	var got map[string]any
	c.MustDo("GET", "/api/w/main/schedules/get/u/admin/slow_every_second_no_flow_overlap", nil, 200).JSON(t, &got)
	if got["no_flow_overlap"] != true {
		t.Errorf("schedules/get lacks no_flow_overlap: %v", got)
	}
	// An edit without the field sets it false, as Windmill's edit_schedule.
	c.MustDo("POST", "/api/w/main/schedules/update/u/admin/slow_every_second_no_flow_overlap",
		map[string]any{"schedule": "0 0 * * * *", "timezone": "UTC", "args": map[string]any{}}, 200)
	got = nil
	c.MustDo("GET", "/api/w/main/schedules/get/u/admin/slow_every_second_no_flow_overlap", nil, 200).JSON(t, &got)
	if got["no_flow_overlap"] != false {
		t.Errorf("an edit without no_flow_overlap kept it: %v", got)
	}
}

// TestSchedules_Handlers: a schedule's on_failure handler runs once its job
// fails on_failure_times times in a row (exactly then, with
// on_failure_exact), its on_recovery handler once it succeeds again, its
// on_success handler after each success, each with Windmill's arguments.
func TestSchedules_Handlers(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	c.MustDo("POST", "/api/w/main/variables/create", map[string]any{"path": "u/admin/mode", "value": "fail", "is_secret": false, "description": ""}, 201)
	c.MustSaveScript("u/admin/flaky", "bash", "mode=\"$1\"\n[ \"$mode\" = ok ] || { echo \"mode is $mode\" >&2; exit 1; }\necho ok\n")
	// A handler returns the args it got.
	for _, h := range []string{"on_fail", "on_recover", "on_ok"} {
		c.MustSaveScript("u/admin/"+h, "bash", "echo \"$WM_JOB_ID\" > /dev/null\n")
	}
	c.MustDo("POST", "/api/w/main/schedules/create", map[string]any{"path": "u/admin/flaky_every_second", "schedule": "* * * * * *",
		"timezone": "UTC", "script_path": "u/admin/flaky", "is_flow": false, "args": map[string]any{"mode": "$var:u/admin/mode"}, "enabled": true,
		"on_failure": "script/u/admin/on_fail", "on_failure_times": 2, "on_failure_exact": true, "on_failure_extra_args": map[string]any{"channel": "ops"},
		"on_recovery": "script/u/admin/on_recover", "on_recovery_times": 1,
		"on_success": "script/u/admin/on_ok"}, 201)
	type handlerJob struct {
		ID   string                     `json:"id"`
		Args map[string]json.RawMessage `json:"args"`
	}
	handlerJobs := func(path string) []handlerJob {
		var out []handlerJob
		c.MustDo("GET", "/api/w/main/jobs/list?per_page=1000&script_path_exact="+path, nil, 200).JSON(t, &out)
		return out
	}
	waitFor(t, 60*time.Second, "three failed runs", func() bool {
		n := 0
		for _, j := range jobsOfSchedule(t, c, "u/admin/flaky", "u/admin/flaky_every_second", true) {
			if !j.Success {
				n++
			}
		}
		return n >= 3
	})
	c.MustDo("POST", "/api/w/main/variables/update/u/admin/mode", map[string]any{"value": "ok"}, 200)
	waitFor(t, 60*time.Second, "two successful runs", func() bool {
		n := 0
		for _, j := range jobsOfSchedule(t, c, "u/admin/flaky", "u/admin/flaky_every_second", true) {
			if j.Success {
				n++
			}
		}
		return n >= 2 && len(handlerJobs("u/admin/on_ok")) >= 2
	})
	c.MustDo("POST", "/api/w/main/schedules/setenabled/u/admin/flaky_every_second", map[string]any{"enabled": false}, 200)

	fails := handlerJobs("u/admin/on_fail")
	if len(fails) != 1 {
		t.Fatalf("on_failure ran %d times, want once (exactly at the second failure in a row)", len(fails))
	}
	a := fails[0].Args
	for _, k := range []string{"workspace_id", "job_id", "path", "is_flow", "schedule_path", "error", "started_at", "failed_times", "channel"} {
		if _, ok := a[k]; !ok {
			t.Errorf("on_failure's args lack %q: %v", k, a)
		}
	}
	if string(a["failed_times"]) != "2" || string(a["path"]) != `"u/admin/flaky"` || string(a["channel"]) != `"ops"` {
		t.Errorf("on_failure's args: %v", a)
	}
	recoveries := handlerJobs("u/admin/on_recover")
	if len(recoveries) != 1 {
		t.Fatalf("on_recovery ran %d times, want once", len(recoveries))
	}
	r := recoveries[0].Args
	for _, k := range []string{"error", "error_started_at", "schedule_path", "path", "is_flow", "success_result", "success_times", "success_started_at"} {
		if _, ok := r[k]; !ok {
			t.Errorf("on_recovery's args lack %q: %v", k, r)
		}
	}
	if string(r["success_times"]) != "1" || string(r["success_result"]) != `"ok"` {
		t.Errorf("on_recovery's args: %v", r)
	}
}
