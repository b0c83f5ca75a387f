package pyindex

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

func TestNormalizeName(t *testing.T) {
	tests := map[string]string{
		"Django":            "django",
		"zope.interface":    "zope-interface",
		"Foo__Bar-.-baz":    "foo-bar-baz",
		"typing_extensions": "typing-extensions",
		"a":                 "a",
	}
	for in, want := range tests {
		if got := NormalizeName(in); got != want {
			t.Errorf("NormalizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseRequirement(t *testing.T) {
	tests := []struct {
		name, in string
		want     Requirement
		str      string // String(), "" if the same as in
	}{
		{"name only", "alpha", Requirement{Name: "alpha"}, ""},
		{"spaces trimmed", "  alpha  ", Requirement{Name: "alpha"}, "alpha"},
		{"specifier", "Alpha_Beta.gamma >= 1.0, <2", Requirement{Name: "Alpha_Beta.gamma", Specifier: ">=1.0,<2"}, "Alpha_Beta.gamma>=1.0,<2"},
		{"everything", "name[extra1, extra2] (>=1.0) ; python_version < '3.12'",
			Requirement{Name: "name", Extras: []string{"extra1", "extra2"}, Specifier: ">=1.0", Marker: "python_version < '3.12'"},
			"name[extra1,extra2]>=1.0; python_version < '3.12'"},
		{"parenthesized range", "name (>=1.0,<2)", Requirement{Name: "name", Specifier: ">=1.0,<2"}, "name>=1.0,<2"},
		{"empty extras", "name[]", Requirement{Name: "name"}, "name"},
		{"marker without spaces", "name;os_name=='posix'", Requirement{Name: "name", Marker: "os_name=='posix'"}, "name; os_name=='posix'"},
		{"extra marker", `name; extra == "test"`, Requirement{Name: "name", Marker: `extra == "test"`}, ""},
		{"wildcard", "name==1.0.*", Requirement{Name: "name", Specifier: "==1.0.*"}, ""},
		{"arbitrary equality", "name===weird-1", Requirement{Name: "name", Specifier: "===weird-1"}, ""},
		{"direct URL", "name @ https://files.invalid/name-1.0.whl", Requirement{Name: "name", URL: "https://files.invalid/name-1.0.whl"}, ""},
		{"direct URL with marker", "name[x]@https://files.invalid/a.whl ; python_version >= '3'",
			Requirement{Name: "name", Extras: []string{"x"}, URL: "https://files.invalid/a.whl", Marker: "python_version >= '3'"},
			"name[x] @ https://files.invalid/a.whl ; python_version >= '3'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequirement(tt.in)
			if err != nil {
				t.Fatalf("ParseRequirement(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseRequirement(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			wantStr := tt.str
			if wantStr == "" {
				wantStr = tt.in
			}
			if got.String() != wantStr {
				t.Errorf("String() = %q, want %q", got.String(), wantStr)
			}
			again, err := ParseRequirement(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("ParseRequirement(%q) = %#v, %v; want it back", got.String(), again, err)
			}
		})
	}
}

func TestParseRequirement_Errors(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"starts with dash", "-name"},
		{"unterminated extras", "name[extra"},
		{"bad extra", "name[bad extra]"},
		{"empty extra", "name[a,,b]"},
		{"unterminated parenthesis", "name (>=1.0"},
		{"stray parenthesis", "name >=1.0)"},
		{"empty marker", "name ; "},
		{"bad marker", "name; python_version <"},
		{"no URL", "name @ "},
		{"relative URL", "name @ files/a.whl"},
		{"garbage after URL", "name @ https://files.invalid/a.whl garbage"},
		{"no version", "name >="},
		{"bad operator", "name !! 1.0"},
		{"specifier after marker", "name; os_name == 'posix' >=1.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r, err := ParseRequirement(tt.in); err == nil {
				t.Errorf("ParseRequirement(%q) = %#v, want an error", tt.in, r)
			}
		})
	}
}

func FuzzParseRequirement(f *testing.F) {
	for _, seed := range []string{
		"alpha", "name[a,b] (>=1.0,<2) ; python_version < '3.12' and extra == 'x'",
		"name @ https://files.invalid/a.whl ; os_name == 'posix'", "name===x", "name[", "n;(", "a==1.*",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRequirement(s)
		if err != nil {
			return
		}
		again, err := ParseRequirement(r.String())
		if err != nil {
			t.Fatalf("ParseRequirement(%q) = %q, which does not parse: %v", s, r.String(), err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("ParseRequirement(%q) = %#v, read back as %#v", s, r, again)
		}
	})
}

func TestRequirement_Applies(t *testing.T) {
	env := TargetEnv("3.11.2")
	tests := []struct {
		name, req string
		extras    []string
		want      bool
	}{
		{"no marker", "a", nil, true},
		{"environment marker", `a; sys_platform == "wasi"`, []string{"x"}, true},
		{"extra not requested", `a; extra == "x"`, []string{"y", "z"}, false},
		{"extra requested", `a; extra == "x"`, []string{"y", "X"}, true},
		{"extra and environment", `a; extra == "x" and python_version < "3"`, []string{"x"}, false},
		{"no extra", `a; extra != "x"`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRequirements(t, tt.req)[0]
			extras := make([]string, len(tt.extras))
			for i, e := range tt.extras {
				extras[i] = NormalizeName(e)
			}
			got, err := r.applies(context.Background(), env, extras)
			if err != nil || got != tt.want {
				t.Errorf("applies = %t, %v; want %t", got, err, tt.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := mustRequirements(t, `a; extra == "x"`)[0]
	if _, err := r.applies(ctx, env, []string{"y"}); !errors.Is(err, context.Canceled) {
		t.Errorf("applies with a canceled context = %v, want context.Canceled", err)
	}
}
