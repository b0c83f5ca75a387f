package vane

import (
	"errors"
	"strings"
	"testing"
)

func TestScriptEnv(t *testing.T) {
	got, err := ScriptEnv([]string{"GREETING=hello world", "EMPTY=", "WITH_EQ=a=b", "TZ=Europe/Paris", "_x1=1"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"GREETING": "hello world", "EMPTY": "", "WITH_EQ": "a=b", "TZ": "Europe/Paris", "_x1": "1"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s = %q, want %q", k, got[k], v)
		}
	}
	if m, err := ScriptEnv(nil); err != nil || m != nil {
		t.Fatalf("no envs: %v %v", m, err)
	}
	many := make([]string, MaxScriptEnvs+1)
	for i := range many {
		many[i] = "K" + strings.Repeat("x", i) + "=1"
	}
	bad := []struct {
		name string
		envs []string
		want string
	}{
		{"no equals", []string{"GREETING"}, "not <KEY>=<VALUE>"},
		{"empty key", []string{"=x"}, "not a valid variable name"},
		{"digit first", []string{"1A=x"}, "not a valid variable name"},
		{"dash", []string{"A-B=x"}, "not a valid variable name"},
		{"space", []string{"A B=x"}, "not a valid variable name"},
		{"reserved WM_", []string{"WM_TOKEN=x"}, "vane sets it"},
		{"base internal url", []string{"BASE_INTERNAL_URL=http://evil"}, "vane sets it"},
		{"path", []string{"PATH=/tmp"}, "executor sets it"},
		{"ld preload", []string{"LD_PRELOAD=/x.so"}, "how the runtime starts"},
		{"deno", []string{"DENO_V8_FLAGS=--allow-natives-syntax"}, "how the runtime starts"},
		{"node options", []string{"NODE_OPTIONS=--inspect"}, "how the runtime starts"},
		{"nul", []string{"A=x\x00y"}, "NUL byte"},
		{"twice", []string{"A=1", "A=2"}, "set twice"},
		{"too many", many, "more than"},
		{"too large", []string{"A=" + strings.Repeat("x", MaxScriptEnvsBytes)}, "bytes, more than"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := ScriptEnv(c.envs)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ScriptEnv(%.80q) = %v; want an ErrInvalid mentioning %q", c.envs, err, c.want)
			}
		})
	}
}
