package python

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vane"
	jobrt "vane/runtime"
)

// workspace is a fake set of saved scripts for Deployment.ResolveScript.
type workspace map[string]struct {
	code string
	lang vane.ScriptLang
}

func (w workspace) resolve(path string) (string, vane.ScriptLang, error) {
	s, ok := w[path]
	if !ok {
		return "", "", vane.ErrNotFound
	}
	return s.code, s.lang, nil
}

func deploy(tb testing.TB, e *Executor, ws workspace, code string) (string, error) {
	tb.Helper()
	return e.Deploy(context.Background(), &jobrt.Deployment{
		Workspace: "test", Path: "u/test/main", Hash: vane.HashOf(code), Code: code, ResolveScript: ws.resolve,
	})
}

func TestExecutor_DeployWorkspaceImports(t *testing.T) {
	e := MustNewExecutor(t)
	ws := workspace{
		"f/shared/greet": {"from f.shared.util import shout\n\ndef greet(name):\n    return shout('hello ' + name)\n", vane.LangPython3},
		"f/shared/util":  {"def shout(s):\n    return s.upper()\n", vane.LangPython3},
		"u/alice/consts": {"ANSWER = 42\n", vane.LangPython3},
		"f/shared/bashy": {"echo hi\n", vane.LangBash},
	}
	code := "from f.shared.greet import greet\nfrom u.alice import consts\n\ndef main(name: str):\n    return [greet(name), consts.ANSWER]\n"
	lock, err := deploy(t, e, ws, code)
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	l, err := ParseLock(lock)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"f/shared/greet", "f/shared/util", "u/alice/consts"} {
		if l.Scripts[p] != ws[p].code {
			t.Errorf("the lock does not carry %s's code: %q", p, lock)
		}
	}
	again, err := deploy(t, e, ws, code)
	if err != nil || again != lock {
		t.Errorf("a second Deploy of the same code gave %q, %v; expected the same lock", again, err)
	}
	// The lock is what the job runs with, even after the imported script changes.
	ws["f/shared/util"] = struct {
		code string
		lang vane.ScriptLang
	}{"def shout(s):\n    return s.lower()\n", vane.LangPython3}
	out, logs := runJob(t, e, code, lock, `{"name":"bob"}`, nil)
	if !out.Success {
		t.Fatalf("job failed: %s (logs %s)", out.Result, logs)
	}
	jsonEqual(t, out.Result, `["HELLO BOB",42]`)
}

func TestExecutor_DeployErrors(t *testing.T) {
	e := MustNewExecutor(t)
	ws := workspace{
		"f/shared/bashy":  {"echo hi\n", vane.LangBash},
		"f/shared/broken": {"def oops(:\n", vane.LangPython3},
	}
	tests := []struct {
		name string
		code string
		want []string
	}{
		{"third-party packages", "import requests\nimport numpy as np\nfrom pandas import DataFrame\nimport json\n\ndef main():\n    pass\n",
			[]string{"not available", "numpy, pandas, requests"}},
		{"syntax error", "def main(:\n    pass\n", []string{"does not compile", "SyntaxError"}},
		{"missing workspace script", "from f.nowhere.thing import x\n\ndef main():\n    pass\n", []string{"f/nowhere/thing"}},
		{"workspace script of another language", "from f.shared.bashy import x\n\ndef main():\n    pass\n", []string{"bash"}},
		{"imported script does not compile", "from f.shared.broken import oops\n\ndef main():\n    pass\n", []string{"f/shared/broken", "does not compile"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := deploy(t, e, ws, tt.code)
			if err == nil {
				t.Fatal("Deploy succeeded; expected an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestExecutor_DeployPackagesDir(t *testing.T) {
	pkgs := t.TempDir()
	if err := os.MkdirAll(filepath.Join(pkgs, "tinypkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pkgs, "tinypkg", "__init__.py"), []byte("def hello():\n    return 'from tinypkg'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pkgs, "single.py"), []byte("VALUE = 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := mustNewExecutorConfig(t, Config{PackagesDir: pkgs})
	code := "import tinypkg\nfrom single import VALUE\n\ndef main():\n    return [tinypkg.hello(), VALUE]\n"
	lock, err := deploy(t, e, workspace{}, code)
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	if l, _ := ParseLock(lock); strings.Join(l.Packages, ",") != "single,tinypkg" {
		t.Errorf("lock %q does not list the packages used", lock)
	}
	out, logs := runJob(t, e, code, lock, `{}`, nil)
	if !out.Success {
		t.Fatalf("job failed: %s (logs %s)", out.Result, logs)
	}
	jsonEqual(t, out.Result, `["from tinypkg",7]`)

	// Without the packages dir the same code is refused at save.
	plain := MustNewExecutor(t)
	if _, err := deploy(t, plain, workspace{}, code); err == nil || !strings.Contains(err.Error(), "single, tinypkg") {
		t.Errorf("Deploy without the packages dir: %v; expected the packages reported unavailable", err)
	}
}

func TestParseLock(t *testing.T) {
	tests := []struct {
		name    string
		lock    string
		scripts int
		wantErr bool
	}{
		{"empty", "", 0, false},
		{"requirements text is ignored", "requests==2.31.0\n", 0, false},
		{"scripts", `{"scripts":{"f/a/b":"X = 1\n"}}`, 1, false},
		{"broken json", `{"scripts":`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ParseLock(tt.lock)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseLock error %v; wantErr %v", err, tt.wantErr)
			}
			if len(l.Scripts) != tt.scripts {
				t.Errorf("%d scripts; expected %d", len(l.Scripts), tt.scripts)
			}
		})
	}
	if (Lock{}).String() != "" {
		t.Error("the empty lock must encode as \"\"")
	}
}
