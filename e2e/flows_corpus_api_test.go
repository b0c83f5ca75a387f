package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Bad input, flow CRUD and permissions, from the flow corpus
// (flows_corpus_test.go), and the four languages' rawscript steps.

func badInputCases(t *testing.T, admin *Client) {
	admin = admin.For(t)
	// Issue 15 (vane's rule; Windmill saves what its editor sends): a flow
	// that cannot run is refused with 400, naming the module and the field
	// after openflow's FlowModule and FlowModuleValue, and nothing is
	// stored.
	cases := []struct {
		name   string
		path   string
		module M
		field  string
		// previewStatus is preview_flow's answer for the same value: a
		// preview has no path, so a flow "nesting itself" there runs a
		// flow that does not exist.
		previewStatus int
	}{
		{"unknown module type", "f/corpus/bad_type", M{"id": "a", "value": M{"type": "teleport"}}, "value.type", 400},
		{"module without value", "f/corpus/bad_novalue", M{"id": "a"}, "value", 400},
		{"rawscript without content", "f/corpus/bad_nocontent", M{"id": "a", "value": M{"type": "rawscript", "language": "bash", "input_transforms": M{}}}, "value.content", 400},
		{"bad JavaScript in a transform", "f/corpus/bad_js", bash("a", "echo\n", in{"x": "flow_input.("}), "value.input_transforms.x.expr", 400},
		{"bad JavaScript in stop_after_if", "f/corpus/bad_stop", with(bash("a", "echo\n", nil), M{"stop_after_if": M{"expr": "result =="}}), "stop_after_if.expr", 400},
		{"inner flow nesting itself", "f/corpus/bad_self", flowStep("a", "f/corpus/bad_self", nil), "value.path", 404},
	}
	for _, bc := range cases {
		t.Run(bc.name, func(t *testing.T) {
			c := admin.For(t)
			r := c.Do("POST", "/api/w/main/flows/create", M{"path": bc.path, "summary": "", "value": flowValue(nil, bc.module)})
			if r.Status != 400 || !strings.Contains(r.Body, `module "a"`) || !strings.Contains(r.Body, `field "`+bc.field+`"`) {
				t.Errorf("flows/create: %d %s, want 400 naming module \"a\" and field %q", r.Status, r.Body, bc.field)
			}
			if r := c.MustDo("GET", "/api/w/main/flows/exists/"+bc.path, nil, 200); r.Body != "false" {
				t.Errorf("flows/exists after a refused create: %s", r.Body)
			}
			if r := c.Do("POST", "/api/w/main/jobs/run/preview_flow", M{"value": flowValue(nil, bc.module), "args": M{}}); r.Status != bc.previewStatus || !strings.Contains(r.Body, `module "a"`) {
				t.Errorf("preview_flow: %d %s, want %d naming module \"a\"", r.Status, r.Body, bc.previewStatus)
			}
		})
	}
	t.Run("an update that closes a cycle", func(t *testing.T) {
		c := admin.For(t)
		c.MustSaveFlow("f/corpus/cycle_a", flowValue(nil, bash("a", "echo a\n", nil)))
		c.MustSaveFlow("f/corpus/cycle_b", flowValue(nil, flowStep("b", "f/corpus/cycle_a", nil)))
		r := c.Do("POST", "/api/w/main/flows/update/f/corpus/cycle_a", M{"path": "f/corpus/cycle_a", "summary": "",
			"value": flowValue(nil, flowStep("a", "f/corpus/cycle_b", nil))})
		if r.Status != 400 || !strings.Contains(r.Body, `field "value.path"`) {
			t.Errorf("update closing a cycle: %d %s, want 400", r.Status, r.Body)
		}
		var f struct {
			Value json.RawMessage `json:"value"`
		}
		c.MustDo("GET", "/api/w/main/flows/get/f/corpus/cycle_a", nil, 200).JSON(t, &f)
		if strings.Contains(string(f.Value), "cycle_b") {
			t.Errorf("the refused update was stored: %s", f.Value)
		}
	})
}

func crudCases(t *testing.T, admin *Client) {
	admin = admin.For(t)
	c := admin.For(t)
	const path = "f/corpus/crud"
	flows := "/api/w/main/flows/"
	// Spec section 3 (openapi flows endpoints): create answers 201 and the
	// path, update 200; every save is a version in the history, newest
	// first; get/v/{version}/p/{path} reads an old one.
	if r := c.MustDo("POST", flows+"create", M{"path": path, "summary": "one", "value": flowValue(nil, bash("a", "echo one\n", nil))}, 201); r.Body != path {
		t.Errorf("create answered %q", r.Body)
	}
	// flows.rs check_path_conflict: "Flow <path> already exists" is a
	// BadRequest.
	wantStatus(t, "create again", c.Do("POST", flows+"create", M{"path": path, "summary": "one", "value": flowValue(nil)}), 400)
	c.MustDo("POST", flows+"update/"+path, M{"path": path, "summary": "two", "value": flowValue(nil, bash("a", "echo two\n", nil))}, 200)
	var hist []struct {
		ID        uint64 `json:"id"`
		CreatedBy string `json:"created_by"`
	}
	c.MustDo("GET", flows+"history/p/"+path, nil, 200).JSON(t, &hist)
	if len(hist) != 2 || hist[0].ID <= hist[1].ID || hist[0].CreatedBy != "admin" {
		t.Fatalf("history %+v, want two versions, newest first", hist)
	}
	type flowGot struct {
		Path      string          `json:"path"`
		Summary   string          `json:"summary"`
		Value     json.RawMessage `json:"value"`
		VersionID uint64          `json:"version_id"`
		Archived  bool            `json:"archived"`
	}
	var head, old flowGot
	c.MustDo("GET", flows+"get/"+path, nil, 200).JSON(t, &head)
	c.MustDo("GET", flows+"get/v/"+strconv.FormatUint(hist[1].ID, 10)+"/p/"+path, nil, 200).JSON(t, &old)
	if head.Summary != "two" || head.VersionID != hist[0].ID || !strings.Contains(string(head.Value), "echo two") {
		t.Errorf("get: %+v", head)
	}
	if old.Summary != "one" || !strings.Contains(string(old.Value), "echo one") {
		t.Errorf("get/v of the first version: %+v", old)
	}
	var latest struct {
		ID uint64 `json:"id"`
	}
	c.MustDo("GET", flows+"get_latest_version/"+path, nil, 200).JSON(t, &latest)
	if latest.ID != hist[0].ID {
		t.Errorf("get_latest_version %d, want %d", latest.ID, hist[0].ID)
	}
	if r := c.MustDo("POST", "/api/w/main/jobs/run_wait_result/f/"+path, M{}, 200); r.Body != `"two"` {
		t.Errorf("the flow runs its latest version: %s", r.Body)
	}
	listed := func(query string) (found bool, archived bool) {
		var list []flowGot
		c.MustDo("GET", flows+"list?"+query, nil, 200).JSON(t, &list)
		for _, f := range list {
			if f.Path == path {
				return true, f.Archived
			}
		}
		return false, false
	}
	if found, _ := listed("path_start=f/corpus/cr"); !found {
		t.Error("list?path_start does not list the flow")
	}
	var paths []string
	c.MustDo("GET", flows+"list_paths", nil, 200).JSON(t, &paths)
	if !strings.Contains(strings.Join(paths, " "), path) {
		t.Errorf("list_paths %v", paths)
	}
	// Archived: listed only with show_archived, and not run.
	c.MustDo("POST", flows+"archive/"+path, M{"archived": true}, 200)
	if found, _ := listed("path_exact=" + path); found {
		t.Error("an archived flow is listed without show_archived")
	}
	if found, archived := listed("show_archived=true&path_exact=" + path); !found || !archived {
		t.Errorf("list?show_archived: found %v archived %v", found, archived)
	}
	wantStatus(t, "run an archived flow", c.Do("POST", "/api/w/main/jobs/run/f/"+path, M{}), 404)
	c.MustDo("POST", flows+"archive/"+path, M{"archived": false}, 200)
	if found, _ := listed("path_exact=" + path); !found {
		t.Error("an unarchived flow is not listed")
	}
	// Deleted: every version goes.
	c.MustDo("DELETE", flows+"delete/"+path, nil, 200)
	if r := c.MustDo("GET", flows+"exists/"+path, nil, 200); r.Body != "false" {
		t.Errorf("exists after delete: %s", r.Body)
	}
	c.MustDo("GET", flows+"get/"+path, nil, 404)
	c.MustDo("GET", flows+"history/p/"+path, nil, 404)
}

func permissionCases(t *testing.T, admin *Client) {
	admin = admin.For(t)
	carol := admin.MustAddMember("carol@example.com", false)
	dave := admin.MustAddMember("dave@example.com", false)
	t.Run("another user's u/ flow is not found", func(t *testing.T) {
		a, d, c := carol.For(t), dave.For(t), admin.For(t)
		a.MustSaveFlow("u/carol/private", flowValue(nil, bash("a", "echo mine\n", nil)))
		// Windmill's permission model: only the owner of u/<user>/ (and
		// admins, and those it is shared with) reads it; for others it does
		// not exist.
		d.MustDo("GET", "/api/w/main/flows/get/u/carol/private", nil, 404)
		if r := d.MustDo("GET", "/api/w/main/flows/exists/u/carol/private", nil, 200); r.Body != "false" {
			t.Errorf("exists for another member: %s", r.Body)
		}
		d.MustDo("POST", "/api/w/main/jobs/run/f/u/carol/private", M{}, 404)
		var list []struct {
			Path string `json:"path"`
		}
		d.MustDo("GET", "/api/w/main/flows/list", nil, 200).JSON(t, &list)
		for _, f := range list {
			if f.Path == "u/carol/private" {
				t.Error("another member's flow is listed")
			}
		}
		a.MustDo("GET", "/api/w/main/flows/get/u/carol/private", nil, 200)
		c.MustDo("GET", "/api/w/main/flows/get/u/carol/private", nil, 200)
	})
	t.Run("a variable the flow's user may not read is missing", func(t *testing.T) {
		d, c := dave.For(t), admin.For(t)
		c.MustDo("POST", "/api/w/main/variables/create", M{"path": "u/admin/private", "value": "hidden", "is_secret": false, "description": ""}, 201)
		results := map[string]json.RawMessage{}
		for _, p := range []string{"u/admin/private", "u/admin/missing"} {
			id := d.MustPreviewFlow(flowValue(nil, bash("a", "v=\"$1\"\necho \"$v\"\n", in{"v": "variable('" + p + "')"})), M{})
			r, ok := d.WaitJob(id, time.Minute)
			if ok {
				t.Fatalf("variable(%s) read by dave: %s", p, r)
			}
			results[p] = r
		}
		// worker_flow.rs transform_input: "Error during isolated evaluation
		// of expression `<expr>`:\n<error>" fails the step; js_eval.rs
		// op_variable reads with the job's permissions. Windmill's
		// variables.rs explain_variable_perm_error then says "Variable
		// exists but you don't have access to it"; vane answers exactly as
		// for a missing variable (its rule, api/acl.go checkRead), so a
		// flow cannot probe which variables exist.
		want := "{\"error\": {\"name\": \"ExecutionErr\", \"message\": \"Error during isolated evaluation of expression `variable('u/admin/missing')`:\\nGoError: variable(\\\"u/admin/missing\\\"): variable u/admin/missing not found\"}}"
		if !jsonEqual(results["u/admin/missing"], []byte(want)) {
			t.Errorf("a missing variable: %s\nwant %s", compact(results["u/admin/missing"]), want)
		}
		hidden := strings.ReplaceAll(string(results["u/admin/private"]), "u/admin/private", "u/admin/missing")
		if !jsonEqual([]byte(hidden), results["u/admin/missing"]) {
			t.Errorf("a variable dave may not read fails differently from a missing one:\n%s\n%s", compact(results["u/admin/private"]), compact(results["u/admin/missing"]))
		}
	})
}

// TestFlowsCorpusLanguages: a flow whose rawscript steps are in each of
// vane's four languages, each taking the previous one's result.
func TestFlowsCorpusLanguages(t *testing.T) {
	if _, err := os.Stat(filepath.Join(toolsDir(t), "python-wasm", "current")); err != nil {
		t.Fatalf("the CPython wasm build is missing (%v): make deps installs it", err)
	}
	srv := MustStartServer(t, ServerOptions{Args: []string{"--languages", "bash,deno,python3,go"}})
	c := srv.Client()
	value := flowValue(nil,
		rawModule("py", "python3", "def main(x: int):\n    return x + 1\n", in{"x": "flow_input.x"}),
		rawModule("ts", "deno", "export function main(x: number) {\n  return x * 2;\n}\n", in{"x": "previous_result"}),
		rawModule("go", "go", "package inner\n\nfunc main(x int) (interface{}, error) {\n\treturn x + 3, nil\n}\n", in{"x": "previous_result"}),
		bash("sh", "x=\"$1\"\necho \"bash $x\"\n", in{"x": "previous_result"}))
	c.MustSaveFlow("f/corpus/languages", value)
	// openflow RawScript{content, language}: each step runs in its
	// language with its transforms' args; the flow's result is the last
	// step's ((4 + 1) * 2 + 3 = 13). The first run builds the Go step and
	// caches the Deno one: polled, with a deadline for the race detector.
	cold := 3 * time.Minute
	if raceEnabled {
		cold = 10 * time.Minute
	}
	first := c.MustRunFlow("f/corpus/languages", M{"x": 4})
	if result, ok := c.WaitJob(first, cold); !ok || string(result) != `"bash 13"` {
		t.Fatalf("result %s (success %v), want \"bash 13\"", result, ok)
	}
	if r := c.MustDo("POST", "/api/w/main/jobs/run_wait_result/f/f/corpus/languages", M{"x": 5}, 200); r.Body != `"bash 15"` {
		t.Fatalf("result %s, want \"bash 15\"", r.Body)
	}
	id := c.MustPreviewFlow(value, M{"x": 6})
	wantResult(t, c, id, true, `"bash 17"`)
	langs := map[string]string{}
	for _, j := range c.MustStepJobs(id) {
		var lang struct {
			Language string `json:"language"`
		}
		c.MustDo("GET", "/api/w/main/jobs_u/get/"+j.ID, nil, 200).JSON(t, &lang)
		langs[j.FlowStepID] = lang.Language
	}
	if got, _ := json.Marshal(langs); string(got) != `{"go":"go","py":"python3","sh":"bash","ts":"deno"}` {
		t.Errorf("step languages %s", got)
	}
}
