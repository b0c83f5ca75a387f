package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Windmill's own CLI, wmill (npm package windmill-cli, pinned and
// installed by `make deps` into $VANE_TOOLS_DIR/wmill, see mk/wmill.mk), run
// by node against the real binary over loopback: a Windmill user's
// workflow must work unchanged.

// wmillCLI runs the installed wmill with its own config directory and
// home, in a project directory.
type wmillCLI struct {
	t       *testing.T
	main    string // .../windmill-cli/esm/main.js
	node    string
	config  string
	project string
}

// mustWmill finds the installed CLI and node; a missing one fails the test
// naming make deps.
func mustWmill(t *testing.T) *wmillCLI {
	t.Helper()
	main := filepath.Join(toolsDir(t), "wmill", "node_modules", "windmill-cli", "esm", "main.js")
	if _, err := os.Stat(main); err != nil {
		t.Fatalf("Windmill's CLI is missing (%v): make deps installs it (mk/wmill.mk)", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not on PATH (%v): the machine needs node and npm, which make deps uses too", err)
	}
	return &wmillCLI{t: t, main: main, node: node, config: t.TempDir(), project: t.TempDir()}
}

// run runs `wmill args...` in the project directory, bounded in time, and
// returns its combined output; a non-zero exit fails the test.
func (w *wmillCLI) run(args ...string) string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.node, append([]string{w.main, "--config-dir", w.config}, args...)...)
	cmd.Dir = w.project
	// A home of its own (the CLI keeps state there) and no colors.
	cmd.Env = append(os.Environ(), "HOME="+w.config, "NO_COLOR=1", "FORCE_COLOR=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		w.t.Fatalf("wmill %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// file reads a file of the project; a missing one fails the test.
func (w *wmillCLI) file(rel string) string {
	w.t.Helper()
	b, err := os.ReadFile(filepath.Join(w.project, rel))
	if err != nil {
		w.t.Fatalf("%s: %v (the project holds %v)", rel, err, w.files())
	}
	return string(b)
}

func (w *wmillCLI) files() []string {
	var out []string
	_ = filepath.WalkDir(w.project, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(w.project, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func (w *wmillCLI) write(rel, content string) {
	w.t.Helper()
	if err := os.WriteFile(filepath.Join(w.project, rel), []byte(content), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

// mustContain fails the test unless text holds every one of wants.
func mustContain(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("%s does not contain %q:\n%s", what, want, text)
		}
	}
}

// TestWmillCLI_SyncAndMetadata: workspace add, script list (more scripts
// than one of its pages), sync pull (a script, a flow, a folder, a variable
// and a resource land with their content; a secret does not), a local edit
// pushed back with sync push (the new version is the script's HEAD, child
// of the old), and script generate-metadata (Windmill's schema, and the
// lock vane's Python deployer computes for a script that imports another).
func TestWmillCLI_SyncAndMetadata(t *testing.T) {
	w := mustWmill(t)
	if _, err := os.Stat(filepath.Join(toolsDir(t), "python-wasm", "current")); err != nil {
		t.Fatalf("the CPython wasm build is missing (%v): make deps builds it", err)
	}
	srv := MustStartServer(t, ServerOptions{Args: []string{"--languages", "bash,python3"}})
	admin := srv.Client()

	admin.MustDo("POST", "/api/w/main/folders/create", M{"name": "demo", "summary": "Demo folder"}, 200)
	hello := "name=\"$1\"\ncount=\"${2:-5}\"\necho hello $name $count\n"
	oldHash := admin.MustDo("POST", "/api/w/main/scripts/create", M{"path": "f/demo/hello", "language": "bash", "content": hello,
		"summary": "says hello", "description": ""}, 201).Body
	for i := range 11 {
		admin.MustSaveScript(fmt.Sprintf("f/demo/s%02d", i), "bash", "echo "+fmt.Sprint(i)+"\n")
	}
	admin.MustSaveScript("f/demo/helper", "python3", "def greet(name):\n    return \"hi \" + name\n\n\ndef main():\n    return greet(\"x\")\n")
	admin.MustDo("POST", "/api/w/main/variables/create", M{"path": "f/demo/greeting", "value": "hello there", "is_secret": false,
		"description": "a greeting"}, 201)
	admin.MustDo("POST", "/api/w/main/variables/create", M{"path": "f/demo/token", "value": "wmill-cli-secret-value", "is_secret": true,
		"description": ""}, 201)
	admin.MustDo("POST", "/api/w/main/resources/create", M{"path": "f/demo/db", "resource_type": "postgresql", "description": "the db",
		"value": M{"host": "db.internal", "port": 5432}}, 201)
	admin.MustDo("POST", "/api/w/main/flows/create", M{"path": "f/demo/flow", "summary": "a flow", "description": "",
		"value": M{"modules": []M{{"id": "a", "value": M{"type": "rawscript", "language": "bash", "content": "echo from-the-flow\n",
			"input_transforms": M{}}}}}, "schema": M{"type": "object", "properties": M{}, "required": []string{}}}, 201)

	w.run("workspace", "add", "local", "main", srv.URL+"/", "--token", adminToken)

	t.Run("script list", func(t *testing.T) {
		var list []struct {
			Path string `json:"path"`
		}
		out := w.run("script", "list", "--json")
		start := strings.Index(out, "[")
		if start < 0 {
			t.Fatalf("script list --json printed no JSON array:\n%s", out)
		}
		if err := json.Unmarshal([]byte(out[start:]), &list); err != nil {
			t.Fatalf("script list --json: %v\n%s", err, out)
		}
		seen := map[string]bool{}
		for _, s := range list {
			seen[s.Path] = true
		}
		for _, want := range []string{"f/demo/hello", "f/demo/s00", "f/demo/s10", "f/demo/helper"} {
			if !seen[want] {
				t.Errorf("script list misses %s: %v", want, list)
			}
		}
	})

	w.run("sync", "pull", "--yes")
	if got := w.file("f/demo/hello.sh"); got != hello {
		t.Errorf("hello.sh: %q, want %q", got, hello)
	}
	mustContain(t, "hello.script.yaml", w.file("f/demo/hello.script.yaml"), "summary: says hello", "kind: script", "count:", "default: '5'")
	mustContain(t, "the flow", w.file("f/demo/flow.flow/flow.yaml"), "summary: a flow", "type: rawscript", "language: bash")
	mustContain(t, "the flow's inline script", w.file("f/demo/flow.flow/a.inline_script.sh"), "echo from-the-flow")
	mustContain(t, "the folder", w.file("f/demo/folder.meta.yaml"), "summary: Demo folder", "owners:")
	mustContain(t, "the variable", w.file("f/demo/greeting.variable.yaml"), "value: hello there", "description: a greeting", "is_secret: false")
	mustContain(t, "the resource", w.file("f/demo/db.resource.yaml"), "resource_type: postgresql", "host: db.internal", "port: 5432")
	for _, f := range w.files() {
		if strings.Contains(f, "token") || strings.Contains(w.file(f), "wmill-cli-secret-value") {
			t.Errorf("%s: a secret reached the pull without --plain-secrets", f)
		}
	}

	edited := "name=\"$1\"\ncount=\"${2:-5}\"\necho bonjour $name $count\n"
	w.write("f/demo/hello.sh", edited)
	w.run("sync", "push", "--yes")
	var head struct {
		Hash         string   `json:"hash"`
		Content      string   `json:"content"`
		ParentHashes []string `json:"parent_hashes"`
	}
	admin.MustDo("GET", "/api/w/main/scripts/get/p/f/demo/hello", nil, 200).JSON(t, &head)
	if head.Content != edited || head.Hash == oldHash || len(head.ParentHashes) == 0 || head.ParentHashes[0] != oldHash {
		t.Fatalf("after sync push: HEAD %s (parents %v) content %q; want a child of %s with the edit", head.Hash, head.ParentHashes, head.Content, oldHash)
	}
	if got := admin.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/f/demo/hello", M{"name": "ann", "count": 2}, 200).Body; got != `"bonjour ann 2"` {
		t.Fatalf("the pushed version runs: %s", got)
	}

	w.write("f/demo/uses.py", "from f.demo.helper import greet\n\n\ndef main(who: str = \"you\"):\n    return greet(who)\n")
	w.write("f/demo/count.sh", "name=\"$1\"\ncount=\"${2:-5}\"\necho $name $count\n")
	w.run("script", "generate-metadata", "--yes")
	mustContain(t, "uses.script.yaml", w.file("f/demo/uses.script.yaml"), "lock: '!inline f/demo/uses.script.lock'", "who:", "default: you")
	mustContain(t, "uses.script.lock (vane's Python lock: the scripts it imports)", w.file("f/demo/uses.script.lock"),
		`"f/demo/helper"`, "def greet(name)")
	mustContain(t, "count.script.yaml (Bash parameters are strings)", w.file("f/demo/count.script.yaml"),
		"count:\n      type: string", "default: '5'")
}
