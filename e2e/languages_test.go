package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPython_OverHTTP: the Python scenarios of a Windmill user, through the
// real server: typed parameters with defaults and a datetime, a script that
// imports another workspace script by path, and a script that raises (422
// with the exception's name and message).
func TestPython_OverHTTP(t *testing.T) {
	if _, err := os.Stat(filepath.Join(toolsDir(t), "python-wasm", "current")); err != nil {
		t.Fatalf("the CPython wasm build is missing (%v): make deps installs it", err)
	}
	srv := MustStartServer(t, ServerOptions{Args: []string{"--languages", "bash,python3"}})
	c := srv.Client()
	deployed := func(hash string) {
		t.Helper()
		if lock, lockErr := deploymentStatus(t, c, hash); lock == nil {
			t.Fatalf("deployment of %s failed: %s", hash, *lockErr)
		}
	}

	typed := c.MustSaveScript("u/admin/typed", "python3", `from datetime import datetime, timedelta

def main(name: str, when: datetime, count: int = 2, ratio: float = 0.5, loud: bool = False):
    greeting = ("HI " if loud else "hi ") + name * count
    return {"greeting": greeting, "next_day": when + timedelta(days=1), "ratio": ratio}
`)
	deployed(typed)
	sc := c.MustScriptSchema(typed)
	if got := sc.Properties["when"]["format"]; got != "date-time" {
		t.Errorf("datetime parameter's format is %v, want date-time", got)
	}
	if got := sc.Properties["count"]["default"]; got != float64(2) {
		t.Errorf("count's default is %v, want 2", got)
	}
	if strings.Join(sc.Required, ",") != "name,when" {
		t.Errorf("required = %v, want [name when]", sc.Required)
	}
	r := c.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/typed",
		map[string]any{"name": "ab", "when": "2024-02-28T10:00:00Z", "loud": true}, 200)
	var got struct {
		Greeting string  `json:"greeting"`
		NextDay  string  `json:"next_day"`
		Ratio    float64 `json:"ratio"`
	}
	r.JSON(t, &got)
	if got.Greeting != "HI abab" || !strings.HasPrefix(got.NextDay, "2024-02-29T10:00:00") || got.Ratio != 0.5 {
		t.Errorf("typed result = %+v", got)
	}
	if r := c.Do("POST", "/api/w/main/jobs/run/p/u/admin/typed", map[string]any{"name": "x", "when": "w", "count": "many"}); r.Status != 400 || !strings.Contains(r.Body, "count") {
		t.Errorf("a string for an int: %d %s", r.Status, r.Body)
	}

	// One script imports another by its path.
	deployed(c.MustSaveScript("f/lib/util", "python3", "def shout(s):\n    return s.upper() + '!'\n"))
	importer := c.MustSaveScript("u/admin/uses_lib", "python3", "from f.lib.util import shout\n\ndef main(word: str):\n    return shout(word)\n")
	deployed(importer)
	if r := c.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/uses_lib", map[string]any{"word": "vane"}, 200); r.Body != `"VANE!"` {
		t.Errorf("workspace import: %s", r.Body)
	}

	raises := c.MustSaveScript("u/admin/raises", "python3", "def main(n: int):\n    if n > 1:\n        raise ValueError(f'n is {n}, too big')\n    return n\n")
	deployed(raises)
	r = c.Do("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/raises", map[string]any{"n": 5})
	if r.Status != 422 {
		t.Fatalf("a raising script: status %d, want 422; body %s", r.Status, r.Body)
	}
	var failure struct {
		Error struct{ Name, Message string } `json:"error"`
	}
	r.JSON(t, &failure)
	if failure.Error.Name != "ValueError" || failure.Error.Message != "n is 5, too big" {
		t.Errorf("the exception came back as %+v", failure.Error)
	}
}

// TestGo_OverHTTP: a Go script with a struct parameter is built at save
// (deployment_status shows its lock) and answers run_wait_result with the
// typed result; bad args get 400 from the schema; a script that does not
// compile shows the compiler's message in deployment_status and its runs
// fail with it.
func TestGo_OverHTTP(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("Go scripts need the go toolchain on PATH: %v", err)
	}
	srv := MustStartServer(t, ServerOptions{Args: []string{"--languages", "bash,go"}})
	c := srv.Client()

	hash := c.MustSaveScript("u/admin/order", "go", `package inner

import (
	"fmt"
	"strings"
)

type Item struct {
	Name  string  `+"`json:\"name\"`"+`
	Price float64 `+"`json:\"price\"`"+`
}

func main(customer string, items []Item, discount *float64) (interface{}, error) {
	total := 0.0
	for _, it := range items {
		total += it.Price
	}
	if discount != nil {
		total -= *discount
	}
	return map[string]any{"customer": strings.ToUpper(customer), "total": total, "summary": fmt.Sprintf("%d items", len(items))}, nil
}
`)
	lock, lockErr := deploymentStatus(t, c, hash)
	if lock == nil {
		t.Fatalf("the Go script did not build: %s", *lockErr)
	}
	sc := c.MustScriptSchema(hash)
	if sc.Properties["items"]["type"] != "array" || strings.Join(sc.Required, ",") != "customer,items" {
		t.Errorf("schema of the Go signature: %+v", sc)
	}
	r := c.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/order",
		map[string]any{"customer": "ada", "items": []map[string]any{{"name": "a", "price": 2.5}, {"name": "b", "price": 4}}, "discount": 1}, 200)
	var got map[string]any
	r.JSON(t, &got)
	if got["customer"] != "ADA" || got["total"] != 5.5 || got["summary"] != "2 items" {
		t.Errorf("typed result = %v", got)
	}
	if r := c.Do("POST", "/api/w/main/jobs/run/p/u/admin/order", map[string]any{"customer": 7, "items": []any{}}); r.Status != 400 || !strings.Contains(r.Body, "customer") {
		t.Errorf("a number for a string: %d %s", r.Status, r.Body)
	}

	broken := c.MustSaveScript("u/admin/broken", "go", "package inner\n\nfunc main() (interface{}, error) {\n\treturn undefinedThing, nil\n}\n")
	lock, lockErr = deploymentStatus(t, c, broken)
	if lock != nil || lockErr == nil || !strings.Contains(*lockErr, "undefinedThing") {
		t.Fatalf("a compile error: lock %v, lock_error_logs %v", lock, lockErr)
	}
	id := c.MustDo("POST", "/api/w/main/jobs/run/h/"+broken, map[string]any{}, 201).Body
	res, ok := c.WaitJob(id, 2*time.Minute)
	if ok {
		t.Fatalf("a job of a script that does not compile succeeded: %s", res)
	}
	var failure struct {
		Error struct{ Message string } `json:"error"`
	}
	if err := json.Unmarshal(res, &failure); err != nil || !strings.Contains(failure.Error.Message, "undefinedThing") {
		t.Errorf("the failed job's result %s does not carry the compiler's message", res)
	}
}

// TestDeploy_ResumedAfterKill: a Go script is saved and the server is killed
// with -9 while its build runs, so the version is left pending; after the
// restart the build is resumed, deployment_status shows its lock and the
// script runs. (If a build ever finished before the kill, the test saves a
// new version and tries again, so it always exercises the resumption.)
func TestDeploy_ResumedAfterKill(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("Go scripts need the go toolchain on PATH: %v", err)
	}
	srv := MustStartServer(t, ServerOptions{Args: []string{"--languages", "bash,go", "--log-level", "info"}})
	c := srv.Client()
	for attempt := 1; ; attempt++ {
		code := "package inner\n\nfunc main(n int) (interface{}, error) {\n\treturn n * " + strings.Repeat("1", attempt) + ", nil\n}\n"
		hash := c.MustSaveScript("u/admin/resumed", "go", code)
		srv.Kill9()
		srv.Restart()
		c = srv.Client()
		lock, lockErr := deploymentStatus(t, c, hash)
		if lock == nil {
			t.Fatalf("the resumed deployment failed: %s", *lockErr)
		}
		if !strings.Contains(srv.Output(), "resuming deployment") {
			if attempt == 5 {
				t.Fatalf("the build finished before the kill 5 times; cannot exercise resumption:\n%s", srv.Output())
			}
			continue
		}
		r := c.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/resumed", map[string]any{"n": 2}, 200)
		if want := strings.Repeat("2", 1) + strings.Repeat("2", attempt-1); r.Body != want {
			t.Fatalf("the resumed version answered %s, want %s", r.Body, want)
		}
		return
	}
}
