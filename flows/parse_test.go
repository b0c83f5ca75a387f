package flows

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"vane"
)

// TestParse_BadInput: every malformed flow gives a *ParseError naming the
// module id and the field, matching vane.ErrInvalid.
func TestParse_BadInput(t *testing.T) {
	leaf := func(id string) string {
		return `{"id": "` + id + `", "value": {"type": "identity"}}`
	}
	cases := []struct {
		name   string
		flow   string
		lim    Limits
		module string
		field  string
		msg    string
	}{
		{"not an object", `[]`, Limits{}, "", "value", "must be an object"},
		{"null", `null`, Limits{}, "", "", "missing"},
		{"no modules", `{}`, Limits{}, "", "modules", "is required"},
		{"modules not an array", `{"modules": {}}`, Limits{}, "", "modules", "must be an array"},
		{"module without id", `{"modules": [{"value": {"type": "identity"}}]}`, Limits{}, "", "modules[0].id", "is required"},
		{"module id with a slash", `{"modules": [{"id": "a/b", "value": {"type": "identity"}}]}`, Limits{}, "a/b", "id", "without"},
		{"duplicate id", `{"modules": [` + leaf("a") + `,` + leaf("a") + `]}`, Limits{}, "a", "id", "same id"},
		{"duplicate id across a loop", `{"modules": [` + leaf("a") + `, {"id": "l", "value": {"type": "forloopflow", "iterator": {"type": "static", "value": []}, "modules": [` + leaf("a") + `]}}]}`, Limits{}, "a", "id", "same id"},
		{"missing value", `{"modules": [{"id": "a"}]}`, Limits{}, "a", "value", "is missing"},
		{"unknown module type", `{"modules": [{"id": "a", "value": {"type": "quantum"}}]}`, Limits{}, "a", "value.type", `unknown module type "quantum"`},
		{"missing type", `{"modules": [{"id": "a", "value": {}}]}`, Limits{}, "a", "value.type", "is required"},
		{"aiagent", `{"modules": [{"id": "a", "value": {"type": "aiagent", "tools": [], "input_transforms": {}}}]}`, Limits{}, "a", "value.type", "not supported"},
		{"rawscript without content", `{"modules": [{"id": "a", "value": {"type": "rawscript", "language": "deno", "input_transforms": {}}}]}`, Limits{}, "a", "value.content", "is required"},
		{"rawscript without language", `{"modules": [{"id": "a", "value": {"type": "rawscript", "content": "x", "input_transforms": {}}}]}`, Limits{}, "a", "value.language", "is required"},
		{"rawscript content not a string", `{"modules": [{"id": "a", "value": {"type": "rawscript", "content": 3, "language": "deno"}}]}`, Limits{}, "a", "value.content", "must be a string"},
		{"script without path", `{"modules": [{"id": "s", "value": {"type": "script", "input_transforms": {}}}]}`, Limits{}, "s", "value.path", "is required"},
		{"script bad hash", `{"modules": [{"id": "s", "value": {"type": "script", "path": "f/x", "hash": "XYZ", "input_transforms": {}}}]}`, Limits{}, "s", "value.hash", "16 hex"},
		{"flow without path", `{"modules": [{"id": "f", "value": {"type": "flow", "input_transforms": {}}}]}`, Limits{}, "f", "value.path", "is required"},
		{"forloop without iterator", `{"modules": [{"id": "l", "value": {"type": "forloopflow", "modules": []}}]}`, Limits{}, "l", "value.iterator", "is required"},
		{"forloop without modules", `{"modules": [{"id": "l", "value": {"type": "forloopflow", "iterator": {"type": "static", "value": []}}}]}`, Limits{}, "l", "value.modules", "is required"},
		{"bad JavaScript in a transform", `{"modules": [{"id": "a", "value": {"type": "rawscript", "content": "x", "language": "deno", "input_transforms": {"x": {"type": "javascript", "expr": "flow_input.("}}}}]}`, Limits{}, "a", "value.input_transforms.x.expr", "bad JavaScript"},
		{"empty expression", `{"modules": [{"id": "a", "value": {"type": "rawscript", "content": "x", "language": "deno", "input_transforms": {"x": {"type": "javascript", "expr": "  "}}}}]}`, Limits{}, "a", "value.input_transforms.x.expr", "empty"},
		{"unknown transform type", `{"modules": [{"id": "a", "value": {"type": "rawscript", "content": "x", "language": "deno", "input_transforms": {"x": {"type": "ai", "prompt": "?"}}}}]}`, Limits{}, "a", "value.input_transforms.x.type", "unknown input transform"},
		{"transform not an object", `{"modules": [{"id": "a", "value": {"type": "rawscript", "content": "x", "language": "deno", "input_transforms": {"x": 3}}}]}`, Limits{}, "a", "value.input_transforms.x", "must be an object"},
		{"branchone branch without expr", `{"modules": [{"id": "b", "value": {"type": "branchone", "branches": [{"modules": []}], "default": []}}]}`, Limits{}, "b", "value.branches[0].expr", "is required"},
		{"branchone bad expr", `{"modules": [{"id": "b", "value": {"type": "branchone", "branches": [{"expr": "a ==", "modules": []}], "default": []}}]}`, Limits{}, "b", "value.branches[0].expr", "bad JavaScript"},
		{"branchone without default", `{"modules": [{"id": "b", "value": {"type": "branchone", "branches": []}}]}`, Limits{}, "b", "value.default", "is required"},
		{"branchall branches not an array", `{"modules": [{"id": "b", "value": {"type": "branchall", "branches": {}}}]}`, Limits{}, "b", "value.branches", "must be an array"},
		{"nested module error names the nested id", `{"modules": [{"id": "l", "value": {"type": "forloopflow", "iterator": {"type": "static", "value": []}, "modules": [{"id": "inner", "value": {"type": "teleport"}}]}}]}`, Limits{}, "inner", "value.type", "unknown module type"},
		{"stop_after_if bad syntax", `{"modules": [{"id": "a", "stop_after_if": {"expr": "result >"}, "value": {"type": "identity"}}]}`, Limits{}, "a", "stop_after_if.expr", "bad JavaScript"},
		{"stop_after_if without expr", `{"modules": [{"id": "a", "stop_after_if": {"skip_if_stopped": true}, "value": {"type": "identity"}}]}`, Limits{}, "a", "stop_after_if.expr", "is required"},
		{"skip_if without expr", `{"modules": [{"id": "a", "skip_if": {}, "value": {"type": "identity"}}]}`, Limits{}, "a", "skip_if.expr", "is required"},
		{"retry random_factor over 100", `{"modules": [{"id": "a", "retry": {"exponential": {"attempts": 1, "seconds": 1, "random_factor": 120}}, "value": {"type": "identity"}}]}`, Limits{}, "a", "retry.exponential.random_factor", "between 0 and 100"},
		{"retry negative attempts", `{"modules": [{"id": "a", "retry": {"constant": {"attempts": -1}}, "value": {"type": "identity"}}]}`, Limits{}, "a", "retry.constant.attempts", "non-negative"},
		{"retry too many attempts", `{"modules": [{"id": "a", "retry": {"constant": {"attempts": 1001}}, "value": {"type": "identity"}}]}`, Limits{}, "a", "retry", "limit is 1000"},
		{"retry_if bad syntax", `{"modules": [{"id": "a", "retry": {"retry_if": {"expr": "(("}}, "value": {"type": "identity"}}]}`, Limits{}, "a", "retry.retry_if.expr", "bad JavaScript"},
		{"suspend required_events not a number", `{"modules": [{"id": "a", "suspend": {"required_events": "one"}, "value": {"type": "identity"}}]}`, Limits{}, "a", "suspend.required_events", "must be a number"},
		{"suspend bad user_groups_required", `{"modules": [{"id": "a", "suspend": {"required_events": 1, "user_groups_required": {"type": "javascript", "expr": "["}}, "value": {"type": "identity"}}]}`, Limits{}, "a", "suspend.user_groups_required.expr", "bad JavaScript"},
		{"sleep negative", `{"modules": [{"id": "a", "sleep": -3, "value": {"type": "identity"}}]}`, Limits{}, "a", "sleep", "negative"},
		{"timeout bad syntax", `{"modules": [{"id": "a", "timeout": {"type": "javascript", "expr": "1 +"}, "value": {"type": "identity"}}]}`, Limits{}, "a", "timeout.expr", "bad JavaScript"},
		{"mock not an object", `{"modules": [{"id": "a", "mock": true, "value": {"type": "identity"}}]}`, Limits{}, "a", "mock", "must be an object"},
		{"failure module is a loop", `{"modules": [], "failure_module": {"id": "failure", "value": {"type": "forloopflow", "iterator": {"type": "static", "value": []}, "modules": []}}}`, Limits{}, "failure", "value.type", "must be a script"},
		{"failure module bad type", `{"modules": [], "failure_module": {"id": "failure", "value": {"type": "nope"}}}`, Limits{}, "failure", "value.type", "unknown module type"},
		{"preprocessor suspends", `{"modules": [], "preprocessor_module": {"id": "preprocessor", "suspend": {"required_events": 1}, "value": {"type": "rawscript", "content": "x", "language": "deno"}}}`, Limits{}, "preprocessor", "suspend", "cannot suspend"},
		{"early_return unknown id", `{"early_return": "zz", "modules": [` + leaf("a") + `]}`, Limits{}, "", "early_return", `"zz"`},
		{"skip_expr bad syntax", `{"skip_expr": "flow_input.)", "modules": []}`, Limits{}, "", "skip_expr", "bad JavaScript"},
		{"flow_env not an object", `{"flow_env": ["A"], "modules": []}`, Limits{}, "", "flow_env", "must be an object"},
		{"exponential base 0", `{"modules": [{"id": "a", "retry": {"exponential": {"attempts": 2, "seconds": 0}}, "value": {"type": "identity"}}]}`, Limits{}, "a", "retry.exponential.seconds", "greater than 0"},
		{"nesting deeper than MaxDepth", `{"modules": [{"id": "l1", "value": {"type": "forloopflow", "iterator": {"type": "static", "value": []}, "modules": [{"id": "l2", "value": {"type": "forloopflow", "iterator": {"type": "static", "value": []}, "modules": [` + leaf("deep") + `]}}]}}]}`, Limits{MaxDepth: 2}, "l2", "value.modules", "limit is 2"},
		{"more modules than MaxModules", `{"modules": [` + leaf("a") + `,` + leaf("b") + `,` + leaf("c") + `]}`, Limits{MaxModules: 2}, "", "modules", "limit is 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseWithLimits(json.RawMessage(c.flow), c.lim)
			if err == nil {
				t.Fatal("Parse accepted a malformed flow")
			}
			if !errors.Is(err, vane.ErrInvalid) {
				t.Errorf("error %v does not match vane.ErrInvalid", err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *ParseError", err, err)
			}
			if pe.Module != c.module || pe.Field != c.field {
				t.Errorf("module %q field %q, want module %q field %q (%v)", pe.Module, pe.Field, c.module, c.field, err)
			}
			if !strings.Contains(pe.Msg, c.msg) {
				t.Errorf("message %q does not contain %q", pe.Msg, c.msg)
			}
		})
	}
}

// TestParse_Accepts checks what Parse keeps from a valid flow.
func TestParse_Accepts(t *testing.T) {
	f, err := Parse(json.RawMessage(`{
		"concurrent_limit": 3, "concurrency_key": "k", "concurrency_time_window_s": 60, "priority": 2,
		"same_worker": true, "cache_ttl": 30, "debounce_delay_s": 5, "debounce_key": "d",
		"modules": [
			{"id": "a", "summary": "first", "input_transform": {"x": {"type": "static", "value": 1}},
			 "value": {"type": "script", "path": "f/x"}},
			{"id": "b", "suspend": {"required_events": 1}, "value": {"type": "identity", "flow": true}}
		]}`))
	if err != nil {
		t.Fatal(err)
	}
	if f.ConcurrentLimit != 3 || f.ConcurrencyKey != "k" || f.ConcurrencyTimeWindowS != 60 || f.Priority == nil || *f.Priority != 2 ||
		!f.SameWorker || f.CacheTTL != 30 || f.DebounceDelayS != 5 || f.DebounceKey != "d" {
		t.Errorf("flow-level fields not kept: %+v", f)
	}
	a := f.Module("a")
	if a == nil || a.Summary != "first" || string(a.InputTransforms["x"].Value) != "1" {
		t.Errorf("legacy module-level input_transform not read: %+v", a)
	}
	if len(f.Modules) != 3 || !f.Modules[2].Virtual || f.Modules[2].ID != "b-v" || f.Modules[2].Kind != KindIdentity {
		t.Errorf("no virtual identity after a last module that suspends: %d modules", len(f.Modules))
	}
}

// TestCheckNesting: an inner flow that runs its parent, directly or through
// another flow, is refused with the module id and the path; so is a chain
// deeper than the limit.
func TestCheckNesting(t *testing.T) {
	flowRunning := func(id string, paths ...string) *Flow {
		var mods []string
		for i, p := range paths {
			mods = append(mods, fmt.Sprintf(`{"id": "%s%d", "value": {"type": "flow", "path": %q, "input_transforms": {}}}`, id, i, p))
		}
		f, err := Parse(json.RawMessage(`{"modules": [` + strings.Join(mods, ",") + `]}`))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	store := map[string]*Flow{
		"f/a":    flowRunning("a", "f/b"),
		"f/b":    flowRunning("b", "f/leaf", "f/a"),
		"f/leaf": flowRunning("leaf"),
		"f/self": flowRunning("s", "f/self"),
		"f/c1":   flowRunning("c1", "f/c2"),
		"f/c2":   flowRunning("c2", "f/c3"),
		"f/c3":   flowRunning("c3", "f/leaf"),
		"f/miss": flowRunning("m", "f/none"),
	}
	load := func(p string) (*Flow, error) {
		if f, ok := store[p]; ok {
			return f, nil
		}
		return nil, vane.ErrNotFound
	}
	cases := []struct {
		name   string
		path   string
		depth  int
		module string
		is     error
	}{
		{"through another flow", "f/a", 10, "b1", vane.ErrInvalid},
		{"itself", "f/self", 10, "s0", vane.ErrInvalid},
		{"too deep", "f/c1", 2, "c20", vane.ErrInvalid},
		{"missing inner flow", "f/miss", 10, "m0", vane.ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckNesting(c.path, store[c.path], c.depth, load)
			if !errors.Is(err, c.is) {
				t.Fatalf("error %v, want %v", err, c.is)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("module %q", c.module)) {
				t.Errorf("error %q does not name module %q", err, c.module)
			}
		})
	}
	if err := CheckNesting("f/c1", store["f/c1"], 10, load); err != nil {
		t.Errorf("a chain within the limit was refused: %v", err)
	}
	if got := store["f/b"].InnerFlows(); strings.Join(got, ",") != "f/leaf,f/a" {
		t.Errorf("InnerFlows = %v", got)
	}
}

func TestStepKey_String(t *testing.T) {
	cases := []struct {
		name string
		key  StepKey
		text string
	}{
		{"top level", StepKey{Step: "a", Attempt: 0}, "a@0"},
		{"retry", StepKey{Step: "a", Attempt: 3}, "a@3"},
		{"nested", StepKey{Path: []Frame{{"l", 0, 3}, {"b", 1, 2}}, Step: "c", Attempt: 1}, "l@0#3/b@1#2/c@1"},
		{"body", StepKey{Path: []Frame{{"l", 0, 3}}}, "l@0#3/"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.key.String(); got != c.text {
				t.Fatalf("String = %q, want %q", got, c.text)
			}
			back, err := ParseStepKey(c.text)
			if err != nil || !back.Equal(c.key) {
				t.Fatalf("ParseStepKey(%q) = %+v, %v", c.text, back, err)
			}
		})
	}
	for _, bad := range []string{"", "a", "a@x", "l@0/c@0", "l@0#-1/c@0", "@0"} {
		if _, err := ParseStepKey(bad); !errors.Is(err, vane.ErrInvalid) {
			t.Errorf("ParseStepKey(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}
