package bash

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"vane"
	jobrt "vane/runtime"
)

// TestParseSignature: Windmill's Bash parser (windmill-parser-bash,
// parse_bash_file and its test_parse_bash_sig) makes every parameter a
// string, a default its text as a string (even a number's: "${2:-5}" is
// "5"), orders parameters by position, and leaves $0 and other lines out.
func TestParseSignature(t *testing.T) {
	cases := []struct {
		name     string
		code     string
		order    []string
		types    []string
		required []string
		defaults map[string]any
	}{
		{"positional", "a=\"$1\"\nb=\"$2\"\necho", []string{"a", "b"}, []string{"string", "string"}, []string{"a", "b"}, nil},
		{"defaults are strings, numbers too", "name=\"${1}\"\ncount=\"${2:-5}\"\nratio=\"${3:-0.5}\"\nmode=\"${4:-latest with spaces}\"\n",
			[]string{"name", "count", "ratio", "mode"}, []string{"string", "string", "string", "string"}, []string{"name"},
			map[string]any{"count": "5", "ratio": "0.5", "mode": "latest with spaces"}},
		{"position order, local, comment", "  local second=\"$2\" # the 2nd\nfirst=\"$1\"\n", []string{"first", "second"}, []string{"string", "string"}, []string{"first", "second"}, nil},
		{"not parameters", "x=\"$0\"\ny=\"$HOME\"\nz=$1\necho \"$1\"\nw=\"prefix$1\"\n", nil, nil, nil, nil},
		{"duplicate keeps first", "a=\"$1\"\na=\"$2\"\n", []string{"a"}, []string{"string"}, []string{"a"}, nil},
		{"empty default", "opt=\"${1:-}\"\n", []string{"opt"}, []string{"string"}, nil, map[string]any{"opt": ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := ParseSignature(c.code)
			if !reflect.DeepEqual(s.Order, c.order) {
				t.Fatalf("order %v, want %v", s.Order, c.order)
			}
			for i, n := range c.order {
				if got := s.Properties[n].Type; got != c.types[i] {
					t.Errorf("%s: type %q, want %q", n, got, c.types[i])
				}
			}
			if len(s.Required) != len(c.required) || (len(c.required) > 0 && !reflect.DeepEqual(s.Required, c.required)) {
				t.Errorf("required %v, want %v", s.Required, c.required)
			}
			for n, d := range c.defaults {
				if got := s.Properties[n].Default; !reflect.DeepEqual(got, d) {
					t.Errorf("%s: default %#v, want %#v", n, got, d)
				}
			}
		})
	}
}

func TestArgString(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"string raw", `"a b"`, "a b"},
		{"number", `3`, "3"},
		{"object compact", `{ "a" : [1, 2] }`, `{"a":[1,2]}`},
		{"null", `null`, ""},
		{"missing", ``, ""},
		{"bool", `true`, "true"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := argString(json.RawMessage(c.in)); got != c.want {
				t.Fatalf("argString(%s) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

// TestExecutor_Results: the result priority of spec section 6 and failures.
func TestExecutor_Results(t *testing.T) {
	e := MustNewExecutor(t)
	cases := []struct {
		name, code, args, want string
		success                bool
	}{
		{"result.json wins", "echo '[1]' > result.json; echo x > result.out; echo last", `{}`, `[1]`, true},
		{"result.out next", "echo ' out ' > result.out; echo last", `{}`, `"out"`, true},
		{"last line", "echo first; echo '  second  '; echo", `{}`, `"second"`, true},
		{"stderr last line", "echo out; echo err >&2", `{}`, `"err"`, true},
		{"no output", "true", `{}`, `"` + NoResult + `"`, true},
		{"invalid result.json", "echo '{nope' > result.json", `{}`, "not valid JSON", false},
		{"set -e stops", "false\necho after > result.out", `{}`, "exit status 1", false},
		{"args in order", "b=\"$2\"\na=\"$1\"\necho \"$a-$b\"", `{"a":"x","b":{"k":1}}`, `"x-{\"k\":1}"`, true},
		{"args not an object", "echo hi", `[1]`, "not a JSON object", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs strings.Builder
			req := &jobrt.Request{Job: &vane.Job{ID: "t", Workspace: "w", Language: vane.LangBash}, Code: c.code,
				Args: json.RawMessage(c.args), Dir: t.TempDir(), Limits: jobrt.DefaultLimits(), Logs: &logBuilder{b: &logs}}
			out, err := e.Run(context.Background(), req)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if out.Success != c.success {
				t.Fatalf("success %v, want %v: %s (logs %q)", out.Success, c.success, out.Result, logs.String())
			}
			if c.success && string(out.Result) != c.want {
				t.Fatalf("result %s, want %s", out.Result, c.want)
			}
			if !c.success && !strings.Contains(string(out.Result), c.want) {
				t.Fatalf("failure %s does not mention %q", out.Result, c.want)
			}
		})
	}
}

// TestExecutor_ArgsByPosition: the positional args follow the code's
// positions, as Windmill's bash executor (parse_bash_sig) does, whatever
// order the saved schema lists its fields in.
func TestExecutor_ArgsByPosition(t *testing.T) {
	e := MustNewExecutor(t)
	code := "b=\"$2\"\na=\"$1\"\necho \"$a-$b\""
	schema := &vane.Schema{Type: "object", Order: []string{"b", "a"},
		Properties: map[string]*vane.Property{"a": {Type: "string"}, "b": {Type: "string"}}}
	req := &jobrt.Request{Job: &vane.Job{ID: "t", Workspace: "w", Language: vane.LangBash}, Code: code, Schema: schema,
		Args: json.RawMessage(`{"a":"x","b":"y"}`), Dir: t.TempDir(), Limits: jobrt.DefaultLimits(), Logs: &logBuilder{b: &strings.Builder{}}}
	out, err := e.Run(context.Background(), req)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !out.Success || string(out.Result) != `"x-y"` {
		t.Fatalf("success %v result %s, want \"x-y\"", out.Success, out.Result)
	}
}

// TestExecutor_ResultSymlinkNotFollowed: a result file planted as a symlink
// to a host file is not read by the (root) host.
func TestExecutor_ResultSymlinkNotFollowed(t *testing.T) {
	e := MustNewExecutor(t)
	secret := filepath.Join(t.TempDir(), "host-secret")
	if err := os.WriteFile(secret, []byte(`"host secret"`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := e.Run(context.Background(), &jobrt.Request{Job: &vane.Job{ID: "t"}, Code: "ln -s " + secret + " result.json; echo planted",
		Args: json.RawMessage(`{}`), Dir: t.TempDir(), Limits: jobrt.DefaultLimits()})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out.Result), "host secret") {
		t.Fatalf("the host followed the job's symlink: %s", out.Result)
	}
}

func TestConfig_Validate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no sandbox", Config{}, "Sandbox"},
		{"relative bash", Config{Sandbox: MustNewExecutor(t).cfg.Sandbox, BashPath: "bash"}, "BashPath"},
		{"bad port", Config{Sandbox: MustNewExecutor(t).cfg.Sandbox, APIPort: 70000}, "APIPort"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New = %v; want an error naming %s", err, c.want)
			}
		})
	}
}

// logBuilder collects logs; the executor serializes its writes.
type logBuilder struct{ b *strings.Builder }

func (s *logBuilder) Write(p []byte) (int, error) { return s.b.Write(p) }

func TestTailWriter_LastLines(t *testing.T) {
	cases := []struct {
		name   string
		writes []string
		n      int
		want   []string
	}{
		{"simple", []string{"a\nb\n", "c\n"}, 2, []string{"b", "c"}},
		{"no newline at end", []string{"a\nb"}, 1, []string{"b"}},
		{"blank lines skipped", []string{"a\n\n  \nb  \n\n"}, 5, []string{"a", "b"}},
		{"wraps the ring", []string{strings.Repeat("x", tailKeep-3), "\nlast line\n"}, 1, []string{"last line"}},
		{"one huge write", []string{strings.Repeat("y\n", tailKeep) + "end"}, 2, []string{"y", "end"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tw := &tailWriter{dst: nopWriter{}}
			for _, w := range c.writes {
				tw.Write([]byte(w))
			}
			if got := tw.lastLines(c.n); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("lastLines(%d) = %q, want %q", c.n, got, c.want)
			}
		})
	}
}
