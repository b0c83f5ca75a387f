package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// scheduledJob is the part of a listed job the schedule tests look at.
type scheduledJob struct {
	ID           string          `json:"id"`
	SchedulePath string          `json:"schedule_path"`
	ScheduledFor time.Time       `json:"scheduled_for"`
	Type         string          `json:"type"`
	Success      bool            `json:"success"`
	Canceled     bool            `json:"canceled"`
	Result       json.RawMessage `json:"result"`
	CreatedBy    string          `json:"created_by"`
	Permissioned string          `json:"permissioned_as"`
}

// jobsOfSchedule lists the jobs (every state; completed only with
// completed) of script scriptPath that carry schedule path, through the
// listing's schedule_path filter (checked against the unfiltered list).
func jobsOfSchedule(tb testing.TB, c *Client, scriptPath, path string, completed bool) []scheduledJob {
	tb.Helper()
	route := "/api/w/main/jobs/list"
	if completed {
		route = "/api/w/main/jobs/completed/list"
	}
	var all, out []scheduledJob
	c.MustDoThrough503("GET", route+"?per_page=1000&script_path_exact="+scriptPath+"&schedule_path="+path, nil, 200).JSON(tb, &out)
	c.MustDoThrough503("GET", route+"?per_page=1000&script_path_exact="+scriptPath, nil, 200).JSON(tb, &all)
	n := 0
	for _, j := range all {
		if j.SchedulePath == path {
			n++
		}
	}
	for _, j := range out {
		if j.SchedulePath != path {
			tb.Fatalf("schedule_path=%s listed a job of schedule %q", path, j.SchedulePath)
		}
	}
	// The unfiltered list, taken after, holds at least every job filtered.
	if len(out) > n {
		tb.Fatalf("schedule_path=%s listed %d jobs, the unfiltered list holds %d of that schedule", path, len(out), n)
	}
	return out
}

// waitFor polls cond every 100 ms until it holds or within passes.
func waitFor(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not happen within %s", what, within)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition with a deadline
	}
}

// TestSchedules_EverySecond: a schedule every second runs its script through
// the real scheduler, queue and worker: jobs carry schedule_path, see
// WM_SCHEDULE_PATH and WM_SCHEDULED_FOR, one per tick; disabling stops them
// and deleting removes the schedule.
func TestSchedules_EverySecond(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	c.MustSaveScript("u/admin/tick", "bash", "x=\"$1\"\necho \"$WM_SCHEDULE_PATH|$WM_SCHEDULED_FOR|$x\"\n")
	const path = "u/admin/every_second"
	if got := c.MustDo("POST", "/api/w/main/schedules/create", map[string]any{"path": path, "schedule": "* * * * * *",
		"timezone": "Europe/Paris", "script_path": "u/admin/tick", "is_flow": false, "args": map[string]any{"x": "hi"},
		"enabled": true, "summary": "every second"}, 201).Body; got != path {
		t.Fatalf("create answered %q, want the path", got)
	}
	var got struct {
		Path       string          `json:"path"`
		Schedule   string          `json:"schedule"`
		Timezone   string          `json:"timezone"`
		ScriptPath string          `json:"script_path"`
		Enabled    bool            `json:"enabled"`
		Email      string          `json:"email"`
		EditedBy   string          `json:"edited_by"`
		Args       map[string]any  `json:"args"`
		ExtraPerms map[string]bool `json:"extra_perms"`
	}
	c.MustDo("GET", "/api/w/main/schedules/get/"+path, nil, 200).JSON(t, &got)
	if got.Path != path || got.Schedule != "* * * * * *" || got.Timezone != "Europe/Paris" || !got.Enabled ||
		got.Email != "admin@vane.local" || got.EditedBy != "admin" || got.Args["x"] != "hi" || got.ExtraPerms == nil {
		t.Fatalf("schedule = %+v", got)
	}
	if r := c.MustDo("GET", "/api/w/main/schedules/exists/"+path, nil, 200).Body; r != "true" {
		t.Fatalf("exists = %s", r)
	}

	var done []scheduledJob
	waitFor(t, 60*time.Second, "two completed scheduled jobs", func() bool {
		done = jobsOfSchedule(t, c, "u/admin/tick", path, true)
		return len(done) >= 2
	})
	for _, j := range done {
		var result string
		if err := json.Unmarshal(j.Result, &result); err != nil {
			t.Fatalf("job %s result %s is not a string", j.ID, j.Result)
		}
		want := fmt.Sprintf("%s|%s|hi", path, j.ScheduledFor.UTC().Format(time.RFC3339))
		if !j.Success || result != want || j.Permissioned != "u/admin" {
			t.Fatalf("job %s: success=%v result %q permissioned_as %s; want %q as u/admin", j.ID, j.Success, result, j.Permissioned, want)
		}
		if j.ScheduledFor.Nanosecond() != 0 {
			t.Fatalf("job %s is scheduled for %s, not a whole second (a tick)", j.ID, j.ScheduledFor)
		}
	}

	// Disable: within a bounded wait nothing of the schedule is queued or
	// running any more, and then nothing new comes.
	if r := c.MustDo("POST", "/api/w/main/schedules/setenabled/"+path, map[string]any{"enabled": false}, 200).Body; !strings.Contains(r, "disabled") {
		t.Fatalf("setenabled answered %q", r)
	}
	var settled int
	waitFor(t, 30*time.Second, "the schedule's jobs to settle after disabling", func() bool {
		all := jobsOfSchedule(t, c, "u/admin/tick", path, false)
		completed := jobsOfSchedule(t, c, "u/admin/tick", path, true)
		settled = len(all)
		return len(all) == len(completed)
	})
	time.Sleep(3 * time.Second) // three ticks of a schedule that must not fire any more
	all := jobsOfSchedule(t, c, "u/admin/tick", path, false)
	if len(all) != settled {
		t.Fatalf("after disabling: %d jobs, then %d three seconds later", settled, len(all))
	}
	// Exactly once per tick, over everything the schedule ever queued.
	seen := map[time.Time]string{}
	for _, j := range all {
		if other, dup := seen[j.ScheduledFor]; dup {
			t.Fatalf("jobs %s and %s are both for the tick %s", other, j.ID, j.ScheduledFor)
		}
		seen[j.ScheduledFor] = j.ID
	}

	c.MustDo("DELETE", "/api/w/main/schedules/delete/"+path, nil, 200)
	c.MustDo("GET", "/api/w/main/schedules/get/"+path, nil, 404)
	if r := c.MustDo("GET", "/api/w/main/schedules/exists/"+path, nil, 200).Body; r != "false" {
		t.Fatalf("exists after delete = %s", r)
	}
	if paths := schedulePaths(t, c); len(paths) != 0 {
		t.Fatalf("list after delete = %v", paths)
	}
}

// schedulePaths lists the paths of the schedules c may see.
func schedulePaths(tb testing.TB, c *Client) []string {
	tb.Helper()
	var list []struct {
		Path string `json:"path"`
	}
	c.MustDo("GET", "/api/w/main/schedules/list?per_page=1000", nil, 200).JSON(tb, &list)
	out := []string{}
	for _, s := range list {
		out = append(out, s.Path)
	}
	return out
}

// TestSchedules_BadInput: every malformed schedule is a 4xx with a message
// that names the problem, and nothing is saved.
func TestSchedules_BadInput(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	c.MustSaveScript("u/admin/typed", "bash", "n=\"$1\"\necho $n\n")
	good := func(change map[string]any) map[string]any {
		b := map[string]any{"path": "u/admin/s", "schedule": "0 */5 * * * *", "timezone": "UTC",
			"script_path": "u/admin/typed", "is_flow": false, "args": map[string]any{"n": "1"}, "enabled": true}
		for k, v := range change {
			if v == nil {
				delete(b, k)
			} else {
				b[k] = v
			}
		}
		return b
	}
	tests := []struct {
		name       string
		body       any
		wantStatus int
		wantMsg    string
	}{
		{"cron with words", good(map[string]any{"schedule": "every five minutes"}), 400, "cron"},
		{"cron with too few fields", good(map[string]any{"schedule": "* *"}), 400, "fields"},
		{"cron out of range", good(map[string]any{"schedule": "0 61 * * * *"}), 400, "cron"},
		{"cron that never fires", good(map[string]any{"schedule": "0 0 0 30 2 *"}), 400, "never fires"},
		{"no cron", good(map[string]any{"schedule": nil}), 400, "schedule and timezone are required"},
		{"unknown timezone", good(map[string]any{"timezone": "Mars/Olympus"}), 400, "timezone"},
		{"no timezone", good(map[string]any{"timezone": nil}), 400, "timezone"},
		{"unknown script", good(map[string]any{"script_path": "u/admin/nope"}), 404, "u/admin/nope"},
		{"bad script path", good(map[string]any{"script_path": "nope"}), 400, "script_path"},
		{"bad path", good(map[string]any{"path": "x/y"}), 400, "path"},
		{"args not an object", good(map[string]any{"args": []int{1}}), 400, "args must be a JSON object"},
		{"a flow that is not there (the path is a script)", good(map[string]any{"is_flow": true}), 404, "flow u/admin/typed"},
		{"malformed body", `{"path": "u/admin/s", "schedule": `, 400, "JSON"},
		{"wrong type", `{"path": "u/admin/s", "schedule": 5}`, 400, "JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.Do("POST", "/api/w/main/schedules/create", tt.body)
			if r.Status != tt.wantStatus || !strings.Contains(r.Body, tt.wantMsg) {
				t.Fatalf("status %d body %q; want %d mentioning %q", r.Status, r.Body, tt.wantStatus, tt.wantMsg)
			}
		})
	}
	if paths := schedulePaths(t, c); len(paths) != 0 {
		t.Fatalf("refused creates saved schedules: %v", paths)
	}

	// A valid one, then bad updates that change nothing.
	c.MustDo("POST", "/api/w/main/schedules/create", good(map[string]any{"enabled": false}), 201)
	for name, body := range map[string]any{
		"bad cron":     map[string]any{"schedule": "nope", "timezone": "UTC", "args": map[string]any{}},
		"bad timezone": map[string]any{"schedule": "* * * * * *", "timezone": "Nowhere/Land", "args": map[string]any{}},
		"bad args":     map[string]any{"schedule": "* * * * * *", "timezone": "UTC", "args": "x"},
	} {
		if r := c.Do("POST", "/api/w/main/schedules/update/u/admin/s", body); r.Status != 400 {
			t.Errorf("update with %s: status %d body %q, want 400", name, r.Status, r.Body)
		}
	}
	if r := c.Do("POST", "/api/w/main/schedules/setenabled/u/admin/s", map[string]any{}); r.Status != 400 || !strings.Contains(r.Body, "enabled") {
		t.Errorf("setenabled without enabled: status %d body %q, want 400", r.Status, r.Body)
	}
	var s struct {
		Schedule string `json:"schedule"`
		Timezone string `json:"timezone"`
		Enabled  bool   `json:"enabled"`
	}
	c.MustDo("GET", "/api/w/main/schedules/get/u/admin/s", nil, 200).JSON(t, &s)
	if s.Schedule != "0 */5 * * * *" || s.Timezone != "UTC" || s.Enabled {
		t.Fatalf("after refused updates the schedule is %+v", s)
	}
	c.MustDo("POST", "/api/w/main/schedules/update/u/admin/nope", map[string]any{"schedule": "* * * * * *", "timezone": "UTC"}, 404)
	c.MustDo("POST", "/api/w/main/schedules/create", good(nil), 400) // already exists
}

// TestSchedules_ACL: schedules are path-owned like variables: bob cannot
// see, change or delete alice's (404 as missing), cannot create one in her
// space (403), nor one that runs her script (404 as missing); an operator
// may not write schedules (403).
func TestSchedules_ACL(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	admin := srv.Client()
	member := admin.MustAddMember
	alice, bob, olga := member("alice@example.com", false), member("bob@example.com", false), member("olga@example.com", true)
	alice.MustSaveScript("u/alice/job", "bash", "echo alice\n")
	bob.MustSaveScript("u/bob/job", "bash", "echo bob\n")
	sched := func(path, script string) map[string]any {
		return map[string]any{"path": path, "schedule": "0 0 12 * * *", "timezone": "UTC", "script_path": script,
			"is_flow": false, "args": map[string]any{}, "enabled": false}
	}
	alice.MustDo("POST", "/api/w/main/schedules/create", sched("u/alice/daily", "u/alice/job"), 201)
	alice.MustCreateFolder("main", "shared", map[string]bool{"g/all": true})
	alice.MustDo("POST", "/api/w/main/schedules/create", sched("f/shared/daily", "u/alice/job"), 201)

	for _, tt := range []struct{ name, method, route string }{
		{"get", "GET", "schedules/get/"},
		{"update", "POST", "schedules/update/"},
		{"setenabled", "POST", "schedules/setenabled/"},
		{"delete", "DELETE", "schedules/delete/"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := map[string]any{"schedule": "* * * * * *", "timezone": "UTC", "args": map[string]any{}, "enabled": true}
			got := bob.Do(tt.method, "/api/w/main/"+tt.route+"u/alice/daily", body)
			missing := bob.Do(tt.method, "/api/w/main/"+tt.route+"u/alice/nope", body)
			if got.Status != 404 || missing.Status != 404 || got.Body != strings.ReplaceAll(missing.Body, "u/alice/nope", "u/alice/daily") {
				t.Fatalf("bob: %d %q; a missing one: %d %q; want the same 404", got.Status, got.Body, missing.Status, missing.Body)
			}
		})
	}
	if r := bob.MustDo("GET", "/api/w/main/schedules/exists/u/alice/daily", nil, 200).Body; r != "false" {
		t.Fatalf("bob: exists = %s", r)
	}
	if paths := schedulePaths(t, bob); strings.Join(paths, ",") != "f/shared/daily" {
		t.Fatalf("bob lists %v, want only f/shared/daily", paths)
	}
	if paths := schedulePaths(t, admin); strings.Join(paths, ",") != "f/shared/daily,u/alice/daily" {
		t.Fatalf("admin lists %v", paths)
	}

	// Creating in alice's space: 403, whether or not something is there.
	for _, p := range []string{"u/alice/daily", "u/alice/new"} {
		if r := bob.Do("POST", "/api/w/main/schedules/create", sched(p, "u/bob/job")); r.Status != 403 {
			t.Fatalf("bob creating %s: %d %q, want 403", p, r.Status, r.Body)
		}
	}
	// A schedule of bob's running alice's script: her script is missing to him.
	if r := bob.Do("POST", "/api/w/main/schedules/create", sched("u/bob/steal", "u/alice/job")); r.Status != 404 ||
		!strings.Contains(r.Body, "u/alice/job") {
		t.Fatalf("bob scheduling alice's script: %d %q, want 404", r.Status, r.Body)
	}
	// Enabling f/shared/daily would make it run as bob, who may not read
	// alice's script: 404 for the script, and nothing changes.
	if r := bob.Do("POST", "/api/w/main/schedules/setenabled/f/shared/daily", map[string]any{"enabled": true}); r.Status != 404 {
		t.Fatalf("bob enabling a schedule of alice's script: %d %q, want 404", r.Status, r.Body)
	}
	// The operator reads the shared schedule but may not change it.
	olga.MustDo("GET", "/api/w/main/schedules/get/f/shared/daily", nil, 200)
	if r := olga.Do("POST", "/api/w/main/schedules/setenabled/f/shared/daily", map[string]any{"enabled": false}); r.Status != 403 {
		t.Fatalf("operator setenabled: %d %q, want 403", r.Status, r.Body)
	}
	var s struct {
		Enabled  bool   `json:"enabled"`
		EditedBy string `json:"edited_by"`
	}
	alice.MustDo("GET", "/api/w/main/schedules/get/u/alice/daily", nil, 200).JSON(t, &s)
	if s.Enabled || s.EditedBy != "alice" {
		t.Fatalf("alice's schedule after bob's attempts: %+v", s)
	}
	alice.MustDo("GET", "/api/w/main/schedules/get/f/shared/daily", nil, 200).JSON(t, &s)
	if s.Enabled || s.EditedBy != "alice" {
		t.Fatalf("the shared schedule after refused changes: %+v", s)
	}
	if paths := schedulePaths(t, admin); strings.Join(paths, ",") != "f/shared/daily,u/alice/daily" {
		t.Fatalf("after refused creates admin lists %v", paths)
	}
}
