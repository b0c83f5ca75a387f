package deno

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"vane"
	jobrt "vane/runtime"
)

// workspace is a map of script path -> code standing for the store, for
// Deployment.ResolveScript.
type workspace map[string]string

func (w workspace) resolve(p string) (string, vane.ScriptLang, error) {
	code, ok := w[p]
	if !ok {
		return "", "", fmt.Errorf("script %s: %w", p, vane.ErrNotFound)
	}
	return code, vane.LangDeno, nil
}

// mustDeploy deploys code at path and returns its lock.
func mustDeploy(tb testing.TB, d *Deno, path, code string, ws workspace) string {
	tb.Helper()
	lock, err := d.Deploy(context.Background(), &jobrt.Deployment{
		Workspace: "test", Path: path, Hash: vane.HashOf(code), Code: code, ResolveScript: ws.resolve,
	})
	if err != nil {
		tb.Fatalf("cannot deploy %s: %v", path, err)
	}
	return lock
}

// mustRun runs code with lock and args and returns the outcome and logs.
func mustRun(tb testing.TB, d *Deno, code, lock string, args any, mutate ...func(*jobrt.Request)) (jobrt.Outcome, string) {
	tb.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		tb.Fatal(err)
	}
	var logs strings.Builder
	req := &jobrt.Request{
		Job:    &vane.Job{ID: "job-1", Workspace: "test", Kind: vane.JobScript, Language: vane.LangDeno},
		Code:   code,
		Lock:   lock,
		Args:   raw,
		Env:    map[string]string{"WM_JOB_ID": "job-1", "WM_WORKSPACE": "test"},
		Dir:    tb.TempDir(),
		Limits: jobrt.Limits{}.WithDefaults(),
		Logs:   &syncWriter{w: &logs},
	}
	for _, m := range mutate {
		m(req)
	}
	out, err := d.Run(context.Background(), req)
	if err != nil {
		tb.Fatalf("Run: %v", err)
	}
	return out, logs.String()
}

func TestDeno_Deploy_NPMAndWorkspaceImports(t *testing.T) {
	ws := workspace{
		"f/common/util":   `export function shout(s: string): string { return s.toUpperCase() + "!" }`,
		"u/alice/helper":  `import { shout } from "/f/common/util.ts"; export const helper = (s: string) => "helper:" + shout(s);`,
		"u/alice/sibling": `export const sibling = 42;`,
	}
	code := `import { camelCase } from "npm:lodash-es@4.17.21";
import { shout } from "/f/common/util.ts";
import { helper } from "./helper.ts";
import { sibling } from "./sibling";
export async function main(words: string) {
  return { camel: camelCase(words), shout: shout(words), helper: helper("x"), sibling };
}`
	d := MustNewDeno(t)
	lock := mustDeploy(t, d, "u/alice/main", code, ws)
	lf, err := parseLock(lock)
	if err != nil {
		t.Fatalf("the lock does not parse: %v\n%s", err, lock)
	}
	if !strings.Contains(string(lf.Deno), "lodash-es@4.17.21") {
		t.Errorf("the lock does not pin lodash-es: %s", lock)
	}
	for _, p := range []string{"f/common/util", "u/alice/helper", "u/alice/sibling"} {
		if lf.Scripts[p] != ws[p] {
			t.Errorf("the lock does not pin script %s: %q", p, lf.Scripts[p])
		}
	}
	want := `{"camel":"helloBigWorld","shout":"HELLO BIG WORLD!","helper":"helper:X!","sibling":42}`
	out, logs := mustRun(t, d, code, lock, map[string]any{"words": "hello big world"})
	assertOutcome(t, out, logs, want)

	// The workspace scripts are pinned: changing them does not change this
	// version's behaviour.
	ws["f/common/util"] = `export function shout(s: string): string { return "changed" }`
	out, logs = mustRun(t, d, code, lock, map[string]any{"words": "hello big world"})
	assertOutcome(t, out, logs, want)

	// Another node (its own empty cache) runs the same version from the
	// lock alone: the packages are fetched frozen at the lock, outside the job.
	other := MustNewDeno(t, func(c *Config) { c.CacheDir = t.TempDir() })
	out, logs = mustRun(t, other, code, lock, map[string]any{"words": "hello big world"})
	assertOutcome(t, out, logs, want)
}

func TestDeno_Deploy_Errors(t *testing.T) {
	tests := []struct {
		name string
		code string
		want string // in the error
	}{
		{"type error", `export function main(x: number): string { return x }`, "TS2322"},
		{"remote import", `import { x } from "https://example.invalid/mod.ts"; export function main() { return x }`, "https://example.invalid/mod.ts"},
		{"jsr import", `import { x } from "jsr:@std/fmt"; export function main() { return x }`, "jsr:@std/fmt"},
		{"plain http import", `import { x } from "http://example.invalid/mod.ts"; export function main() { return x }`, "http://example.invalid/mod.ts"},
		{"missing workspace script", `import { x } from "/f/nowhere/x.ts"; export function main() { return x }`, "not found"},
		{"npm package that does not exist", `import x from "npm:vane-no-such-package-e3b0c442@1.0.0"; export function main() { return x }`, "vane-no-such-package"},
	}
	d := MustNewDeno(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lock, err := d.Deploy(context.Background(), &jobrt.Deployment{
				Workspace: "test", Path: "u/test/bad", Code: tt.code, ResolveScript: workspace{}.resolve,
			})
			if err == nil {
				t.Fatalf("Deploy succeeded with lock %q; expected an error mentioning %q", lock, tt.want)
			}
			if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.want)) {
				t.Errorf("Deploy error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestDeno_Run_PreviewWithNPMImport(t *testing.T) {
	// A preview has no saved lock: the packages are resolved before the job
	// starts, and the job still runs with --cached-only.
	code := `import { kebabCase } from "npm:lodash-es@4.17.21";
export function main(s = "Preview Job") { return kebabCase(s) }`
	out, logs := mustRun(t, MustNewDeno(t), code, "", map[string]any{})
	assertOutcome(t, out, logs, `"preview-job"`)
}

func TestDeno_Run_WrapperSemantics(t *testing.T) {
	tests := []struct {
		name string
		code string
		args string
		want string
		ok   bool
	}{
		{"undefined is null", `export function main() {}`, `{}`, `null`, true},
		{"default applies to a missing arg", `export function main(a = 5, b?: string) { return [a, b ?? "none"] }`, `{"extra": 1}`, `[5,"none"]`, true},
		{"positional by name", `export function main(b: number, a: number) { return b - a }`, `{"a": 1, "b": 10}`, `9`, true},
		{"bigint becomes a string", `export function main() { return { n: 12345678901234567890n } }`, `{}`, `{"n":"12345678901234567890"}`, true},
		{"throw at import time", `throw new RangeError("at load"); export function main() {}`, `{}`, `{"error":{"name":"RangeError","message":"at load"}}`, false},
		{"throwing a string", `export function main() { throw "plain" }`, `{}`, `{"error":{"name":"Error","message":"plain"}}`, false},
		{"rejected promise", `export async function main() { await Promise.resolve(); return Promise.reject(new SyntaxError("nope")) }`, `{}`, `{"error":{"name":"SyntaxError","message":"nope"}}`, false},
		{"sync main", `export function main(x: number) { return x * 2 }`, `{"x": 21}`, `42`, true},
		{"default-exported main", `export default async function main(x: number) { return x + 1 }`, `{"x": 1}`, `2`, true},
		{"no main at all (a library)", `export function handler() { return 1 }`, `{}`, `{"error":{"name":"Error","message":"the script does not export a function main"}}`, false},
	}
	d := MustNewDeno(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, logs := mustRun(t, d, tt.code, "", json.RawMessage(tt.args))
			if out.Success != tt.ok {
				t.Fatalf("success %v with %s; expected %v (logs %s)", out.Success, out.Result, tt.ok, logs)
			}
			if tt.ok {
				assertOutcome(t, out, logs, tt.want)
				return
			}
			var got, want struct {
				Error struct{ Name, Message string }
			}
			_ = json.Unmarshal(out.Result, &got)
			_ = json.Unmarshal([]byte(tt.want), &want)
			if got.Error.Name != want.Error.Name || (want.Error.Message != "" && got.Error.Message != want.Error.Message) {
				t.Errorf("error %+v; expected %+v", got.Error, want.Error)
			}
		})
	}
}

// assertOutcome fails tb unless out succeeded with the JSON want.
func assertOutcome(tb testing.TB, out jobrt.Outcome, logs, want string) {
	tb.Helper()
	if !out.Success {
		tb.Fatalf("job failed: %s (logs: %s)", out.Result, logs)
	}
	var g, w any
	if err := json.Unmarshal(out.Result, &g); err != nil {
		tb.Fatalf("result %q is not JSON: %v", out.Result, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		tb.Fatalf("bad expectation %q: %v", want, err)
	}
	if fmt.Sprint(g) != fmt.Sprint(w) {
		tb.Fatalf("result %s; expected %s", out.Result, want)
	}
}

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex // guards w
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
