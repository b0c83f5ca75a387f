package deno

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfig_Validate(t *testing.T) {
	valid := []struct {
		name string
		cfg  Config
	}{
		{"zero", Config{}},
		{"defaults", DefaultConfig()},
		{"extra hosts", Config{AllowNet: []string{"example.com", "10.0.0.1:5432", "[::1]:80"}}},
		{"tool env", Config{ToolEnv: []string{"NPM_CONFIG_REGISTRY=http://mirror.internal/", "HTTPS_PROXY="}}},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestConfig_Validate_Errors(t *testing.T) {
	invalid := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"negative deploy timeout", Config{DeployTimeout: -time.Second}, "DeployTimeout"},
		{"negative pool size", Config{DedicatedPerScript: -1}, "DedicatedPerScript"},
		{"negative idle", Config{DedicatedIdle: -time.Second}, "DedicatedIdle"},
		{"api port out of range", Config{APIPort: 70000}, "APIPort"},
		{"host list in one entry", Config{AllowNet: []string{"a.com,b.com"}}, "AllowNet"},
		{"url instead of host", Config{AllowNet: []string{"http://a.com/"}}, "AllowNet"},
		{"empty host", Config{AllowNet: []string{""}}, "AllowNet"},
		{"tool env without =", Config{ToolEnv: []string{"JUSTANAME"}}, "ToolEnv"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("Validate = %v; expected an error naming %s", err, tt.field)
			}
		})
	}
}

func TestCheckDeno(t *testing.T) {
	version, err := CheckDeno(context.Background(), denoPathForTests())
	if err != nil {
		t.Fatalf("CheckDeno of the installed deno (run `make deps`): %v", err)
	}
	if !strings.HasPrefix(version, "deno "+Version+" ") {
		t.Errorf("version line %q; expected deno %s (tools/deno/package.json pins it)", version, Version)
	}
	for _, bad := range []string{filepath.Join(t.TempDir(), "no-deno-here"), "/etc/hostname"} {
		if _, err := CheckDeno(context.Background(), bad); !errors.Is(err, ErrDenoMissing) {
			t.Errorf("CheckDeno(%s) = %v; expected ErrDenoMissing", bad, err)
		}
	}
	if _, err := New(Config{DenoPath: filepath.Join(t.TempDir(), "missing"), CacheDir: t.TempDir()}); !errors.Is(err, ErrDenoMissing) {
		t.Errorf("New with a missing deno = %v; expected ErrDenoMissing", err)
	}
}

func TestParseLock(t *testing.T) {
	tests := []struct {
		name        string
		lock        string
		wantDeno    bool
		wantScripts int
		wantPath    string
	}{
		{"empty", "", false, 0, ""},
		{"bare deno.lock as Windmill stores it", `{"version":"5","specifiers":{"npm:a@1":"1.0.0"}}`, true, 0, ""},
		{"vane lock", `{"path":"u/a/b","deno":{"version":"5"},"scripts":{"f/x/y":"export const y = 1"}}`, true, 1, "u/a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lf, err := parseLock(tt.lock)
			if err != nil {
				t.Fatalf("parseLock: %v", err)
			}
			if (len(lf.Deno) > 0) != tt.wantDeno || len(lf.Scripts) != tt.wantScripts || lf.Path != tt.wantPath {
				t.Errorf("parseLock = %+v", lf)
			}
			if tt.lock == "" && lf.String() != "" {
				t.Errorf("an empty lock renders as %q", lf.String())
			}
		})
	}
	if _, err := parseLock("not json"); err == nil {
		t.Error("parseLock accepted text that is not JSON")
	}
}

func TestParseMirrors(t *testing.T) {
	got, err := ParseMirrors(" https://deno.land/=https://mirror.internal/deno.land/ ,https://esm.sh/=https://m.internal/esm/")
	if err != nil || len(got) != 2 || got[0] != (Mirror{"https://deno.land/", "https://mirror.internal/deno.land/"}) || got[1].To != "https://m.internal/esm/" {
		t.Fatalf("%v %v", got, err)
	}
	if got, err := ParseMirrors(""); err != nil || got != nil {
		t.Fatalf("empty: %v %v", got, err)
	}
	for _, bad := range []string{
		"https://deno.land/",                         // no TO
		"http://deno.land/=https://m.internal/",      // not https
		"https://deno.land=https://m.internal/",      // no trailing slash
		"https://deno.land/=https://u:p@m.internal/", // credentials
		"https://deno.land/=https://m.internal/?x=1/",
		"https://deno.land/=https://a.internal/,https://deno.land/=https://b.internal/", // twice
		"https://deno.land/=/relative/",
	} {
		if _, err := ParseMirrors(bad); err == nil {
			t.Errorf("ParseMirrors(%q) accepted it", bad)
		}
	}
}
