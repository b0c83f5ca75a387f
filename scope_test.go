package vane

import (
	"errors"
	"testing"
)

func TestParseScope(t *testing.T) {
	good := map[string]Scope{
		"*":                          {Domain: "*"},
		"jobs:read":                  {Domain: "jobs", Action: "read"},
		"jobs_u:read":                {Domain: "jobs", Action: "read"},
		"scripts:delete":             {Domain: "scripts", Action: "write"},
		"scripts:write:f/ops/*":      {Domain: "scripts", Action: "write", Resources: []string{"f/ops/*"}},
		"scripts:read:u/a/x,u/b/*":   {Domain: "scripts", Action: "read", Resources: []string{"u/a/x", "u/b/*"}},
		"jobs:run:scripts":           {Domain: "jobs", Action: "run", Kind: "scripts"},
		"jobs:run:flows:f/team/flow": {Domain: "jobs", Action: "run", Kind: "flows", Resources: []string{"f/team/flow"}},
	}
	for in, want := range good {
		got, err := ParseScope(in)
		if err != nil {
			t.Errorf("ParseScope(%q): %v", in, err)
			continue
		}
		if got.Domain != want.Domain || got.Action != want.Action || got.Kind != want.Kind || len(got.Resources) != len(want.Resources) {
			t.Errorf("ParseScope(%q) = %+v, want %+v", in, got, want)
		}
		for i := range want.Resources {
			if got.Resources[i] != want.Resources[i] {
				t.Errorf("ParseScope(%q) = %+v, want %+v", in, got, want)
			}
		}
	}
	for _, bad := range []string{"", "jobs", "nope:read", "jobs:fly", "jobs:run:apps", "jobs:run:scripts:a:b",
		"scripts:read:a:b", "scripts:read:a,,b", string(make([]byte, 2000))} {
		if _, err := ParseScope(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseScope(%.20q) = %v, want ErrInvalid", bad, err)
		}
	}
	if err := ValidateScopes([]string{"jobs:read", "if_jobs:filter_tags:gpu"}); err != nil {
		t.Errorf("ValidateScopes: %v", err)
	}
}

func TestScopesAllow(t *testing.T) {
	runScript := func(path string) ScopeNeed {
		return ScopeNeed{Domain: "jobs", Action: "run", Kind: "scripts", Resource: path}
	}
	tests := []struct {
		name   string
		scopes []string
		need   ScopeNeed
		want   bool
	}{
		{"no scopes: not a scoped token", nil, ScopeNeed{Domain: "scripts", Action: "write"}, true},
		{"only tag filters: not a scoped token", []string{"if_jobs:filter_tags:a"}, ScopeNeed{Domain: "scripts", Action: "write"}, true},
		{"star", []string{"*"}, ScopeNeed{Domain: "variables", Action: "write", Resource: "u/a/x"}, true},
		{"same domain and action", []string{"scripts:read"}, ScopeNeed{Domain: "scripts", Action: "read"}, true},
		{"write includes read", []string{"scripts:write"}, ScopeNeed{Domain: "scripts", Action: "read"}, true},
		{"read does not include write", []string{"scripts:read"}, ScopeNeed{Domain: "scripts", Action: "write"}, false},
		{"run includes read", []string{"jobs:run"}, ScopeNeed{Domain: "jobs", Action: "read"}, true},
		{"write does not include run", []string{"jobs:write"}, runScript("u/a/x"), false},
		{"other domain", []string{"scripts:write"}, ScopeNeed{Domain: "variables", Action: "read"}, false},
		{"run of the path", []string{"jobs:run:scripts:u/a/x"}, runScript("u/a/x"), true},
		{"run of another path", []string{"jobs:run:scripts:u/a/x"}, runScript("u/a/y"), false},
		{"run under a prefix", []string{"jobs:run:scripts:f/ops/*"}, runScript("f/ops/deep/x"), true},
		{"prefix is a path boundary", []string{"jobs:run:scripts:u/a/*"}, runScript("u/ab/x"), false},
		{"scripts kind does not run flows", []string{"jobs:run:scripts"},
			ScopeNeed{Domain: "jobs", Action: "run", Kind: "flows", Resource: "u/a/f"}, false},
		{"kindless run runs both", []string{"jobs:run"},
			ScopeNeed{Domain: "jobs", Action: "run", Kind: "flows", Resource: "u/a/f"}, true},
		{"a path-limited scope reads a job by id", []string{"jobs:run:scripts:u/a/x"}, ScopeNeed{Domain: "jobs", Action: "read"}, true},
		{"any of several", []string{"variables:read", "jobs:run:scripts:u/a/x"}, runScript("u/a/x"), true},
		{"a bad scope grants nothing", []string{"nope"}, ScopeNeed{Domain: "jobs", Action: "read"}, false},
	}
	for _, tt := range tests {
		if got := ScopesAllow(tt.scopes, tt.need); got != tt.want {
			t.Errorf("%s: ScopesAllow(%v, %v) = %v, want %v", tt.name, tt.scopes, tt.need, got, tt.want)
		}
	}
}
