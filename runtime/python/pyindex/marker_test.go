package pyindex

import (
	"maps"
	"strings"
	"testing"
)

// with returns a copy of env with key set to value.
func (env Env) with(key, value string) Env {
	out := maps.Clone(env)
	out[key] = value
	return out
}

func TestMarker_Evaluate(t *testing.T) {
	env := TargetEnv("3.11.2")
	tests := []struct {
		name, marker, extra string
		want                bool
	}{
		{"version below", `python_version < "3.12"`, "", true},
		{"version not above", `python_version >= "3.12"`, "", false},
		{"version equal", `python_version == "3.11"`, "", true},
		{"version strictly above", `python_version > "3.11"`, "", false},
		{"version compares numerically", `python_version > "3.9"`, "", true},
		{"full version", `python_full_version >= '3.11.1'`, "", true},
		{"short against full", `python_version < "3.11.2"`, "", true},
		{"compatible", `python_version ~= "3.8"`, "", true},
		{"wildcard", `python_version == "3.11.*"`, "", true},
		{"variable on the right", `"3.8" <= python_version`, "", true},
		{"implementation version", `implementation_version >= "3.11"`, "", true},
		{"in is substring", `python_version in "3.10 3.11"`, "", true},
		{"not in", `python_version not in "3.10 3.12"`, "", true},
		{"literal in variable", `"wasi" in sys_platform`, "", true},
		{"platform", `sys_platform == "win32"`, "", false},
		{"and", `sys_platform != "win32" and os_name == "posix"`, "", true},
		{"and binds tighter", `sys_platform == "win32" and os_name == "nt" or platform_machine == 'wasm32'`, "", true},
		{"parentheses", `sys_platform == "win32" or (os_name == "posix" and platform_machine == 'wasm32')`, "", true},
		{"parentheses change grouping", `(sys_platform == "wasi" or os_name == "nt") and platform_system == "Windows"`, "", false},
		{"string comparison", `platform_release >= "0.0"`, "", true},
		{"implementation", `implementation_name == "cpython" and platform_python_implementation != 'PyPy'`, "", true},
		{"legacy name", `os.name == "posix"`, "", true},
		{"extra normalized", `extra == "Test_Utils"`, "test-utils", true},
		{"extra not requested", `extra == "test"`, "", false},
		{"extra other", `extra == "test"`, "docs", false},
		{"white space", "  python_version\t<\n'3.12'  ", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMarker(tt.marker)
			if err != nil {
				t.Fatalf("ParseMarker(%q): %v", tt.marker, err)
			}
			e := env
			if tt.extra != "" {
				e = env.with("extra", tt.extra)
			}
			got, err := m.Evaluate(e)
			if err != nil {
				t.Fatalf("Evaluate(%q): %v", tt.marker, err)
			}
			if got != tt.want {
				t.Errorf("Evaluate(%q) = %t, want %t", tt.marker, got, tt.want)
			}
		})
	}
}

func TestParseMarker_Errors(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"variable alone", "python_version"},
		{"no right side", "python_version <"},
		{"unquoted version", "python_version < 3.12"},
		{"unknown variable", `foo == "x"`},
		{"two strings", `"a" == "b"`},
		{"two variables", `os_name == sys_platform`},
		{"dangling and", `python_version < "3.12" and`},
		{"unclosed parenthesis", `(python_version < "3.12"`},
		{"extra parenthesis", `python_version < "3.12")`},
		{"single equals", `python_version = "3.12"`},
		{"unterminated string", `python_version < "3.12`},
		{"not without in", `python_version not "3.12"`},
		{"stray character", `python_version < "3.12" & os_name == "posix"`},
		{"too deep", strings.Repeat("(", 100) + `os_name == "posix"` + strings.Repeat(")", 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseMarker(tt.in); err == nil {
				t.Errorf("ParseMarker(%q) succeeded, want an error", tt.in)
			}
		})
	}
}

func TestMarker_EvaluateErrors(t *testing.T) {
	tests := []struct {
		name, marker string
		env          Env
	}{
		{"~= on strings", `platform_release ~= "1.0"`, TargetEnv("3.11.2")},
		{"missing variable", `os_name == "posix"`, Env{"python_version": "3.11"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMarker(tt.marker)
			if err != nil {
				t.Fatalf("ParseMarker(%q): %v", tt.marker, err)
			}
			if _, err := m.Evaluate(tt.env); err == nil {
				t.Errorf("Evaluate(%q) succeeded, want an error", tt.marker)
			}
		})
	}
}

func TestTargetEnv(t *testing.T) {
	env := TargetEnv("3.11.2")
	want := map[string]string{
		"python_version": "3.11", "python_full_version": "3.11.2", "sys_platform": "wasi",
		"os_name": "posix", "implementation_name": "cpython", "implementation_version": "3.11.2",
		"platform_python_implementation": "CPython", "platform_machine": "wasm32",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("TargetEnv(3.11.2)[%s] = %q, want %q", k, env[k], v)
		}
	}
	for name, canonical := range markerVariables {
		if _, ok := env[canonical]; !ok && canonical != "extra" {
			t.Errorf("TargetEnv lacks %s (for %s)", canonical, name)
		}
	}
}

func FuzzParseMarker(f *testing.F) {
	for _, seed := range []string{
		`python_version < "3.12" and (sys_platform == 'win32' or extra == "x")`, `"3" in python_version`,
		`os.name not in 'nt'`, `(`, `a`, `python_version ~= "x"`,
	} {
		f.Add(seed)
	}
	env := TargetEnv("3.11.2").with("extra", "x")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMarker(s)
		if err != nil {
			return
		}
		again, err := ParseMarker(m.String())
		if err != nil {
			t.Fatalf("ParseMarker(%q) succeeded, but not on its String %q: %v", s, m.String(), err)
		}
		got1, err1 := m.Evaluate(env)
		got2, err2 := again.Evaluate(env)
		if got1 != got2 || (err1 == nil) != (err2 == nil) {
			t.Fatalf("%q evaluates differently after a round trip", s)
		}
	})
}
