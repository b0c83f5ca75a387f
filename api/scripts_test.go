package api_test

import (
	"strings"
	"testing"
)

// TestScripts_CreateNeedsContent: NewScript's content is required
// (spec/windmill-api.md, section 2): a body without it, or with null, is a
// 400 that names the field, and nothing is saved.
func TestScripts_CreateNeedsContent(t *testing.T) {
	s := MustACLServer(t)
	for _, body := range []map[string]any{
		{"path": "u/alice/nocontent", "language": "bash", "summary": "", "description": ""},
		{"path": "u/alice/nocontent", "language": "bash", "content": nil},
	} {
		code, msg := s.do(t, "alice", "POST", "scripts/create", body)
		if code != 400 || !strings.Contains(msg, "content") {
			t.Fatalf("%v: %d %q, want a 400 naming content", body, code, msg)
		}
	}
	if code, msg := s.do(t, "alice", "GET", "scripts/exists/p/u/alice/nocontent", nil); code != 200 || msg != "false" {
		t.Fatalf("exists after the refusals: %d %s", code, msg)
	}
}

// TestScripts_BashArgsAreText: a Bash script's parameters are strings
// (Windmill's parser), and its executor passes any other value as its JSON
// text, so a number or a boolean for a string parameter runs; an object is
// refused naming the parameter.
func TestScripts_BashArgsAreText(t *testing.T) {
	s := MustACLServer(t)
	schema := map[string]any{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
		"properties": map[string]any{"name": map[string]any{"type": "string"}, "count": map[string]any{"type": "string", "default": "5"}},
		"required":   []string{"name"}}
	if code, msg := s.do(t, "alice", "POST", "scripts/create", map[string]any{"path": "u/alice/count", "language": "bash",
		"content": "name=\"$1\"\ncount=\"${2:-5}\"\necho \"$name $count\"\n", "schema": schema}); code != 201 {
		t.Fatalf("create: %d %s", code, msg)
	}
	for _, args := range []map[string]any{
		{"name": "a", "count": "7"}, {"name": "a", "count": 7}, {"name": "a", "count": -1.5}, {"name": true}, {"name": "a"},
	} {
		if code, msg := s.do(t, "alice", "POST", "jobs/run/p/u/alice/count", args); code != 201 {
			t.Errorf("%v: %d %s, want 201", args, code, msg)
		}
	}
	if code, msg := s.do(t, "alice", "POST", "jobs/run/p/u/alice/count", map[string]any{"name": map[string]any{"a": 1}}); code != 400 ||
		!strings.Contains(msg, "name: expected string, got object") {
		t.Fatalf("an object: %d %s", code, msg)
	}
}
