package e2e

import (
	"strings"
	"testing"
)

// A script's envs (Windmill's custom environment variables, "<KEY>=<VALUE>")
// reach its jobs; entries that are malformed or would override what vane
// sets are refused at save with a 400 naming them, and nothing is saved.
func TestScriptEnvs(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	c := srv.Client()
	code := "printf '%s|%s|%s' \"$GREETING\" \"$TZ\" \"$WM_WORKSPACE\"\n"
	c.MustDo("POST", "/api/w/main/scripts/create", map[string]any{"path": "u/admin/envs", "content": code, "language": "bash",
		"envs": []string{"GREETING=hello there", "TZ=Europe/Paris"}}, 201)
	if r := c.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/admin/envs", map[string]any{}, 200); r.Body != `"hello there|Europe/Paris|main"` {
		t.Fatalf("the job saw %s; want the script's envs and its WM_* variables", r.Body)
	}
	var sc struct {
		Envs []string `json:"envs"`
	}
	c.MustDo("GET", "/api/w/main/scripts/get/p/u/admin/envs", nil, 200).JSON(t, &sc)
	if strings.Join(sc.Envs, ",") != "GREETING=hello there,TZ=Europe/Paris" {
		t.Fatalf("scripts/get shows envs %q", sc.Envs)
	}

	for _, c2 := range []struct {
		envs []string
		want string
	}{
		{[]string{"GREETING"}, "GREETING"},
		{[]string{"WM_TOKEN=forged"}, "WM_TOKEN"},
		{[]string{"BASE_INTERNAL_URL=http://192.0.2.1"}, "BASE_INTERNAL_URL"},
		{[]string{"LD_PRELOAD=/tmp/x.so"}, "LD_PRELOAD"},
		{[]string{"PATH=/tmp"}, "PATH"},
		{[]string{"A-B=1"}, "A-B"},
	} {
		r := c.Do("POST", "/api/w/main/scripts/create", map[string]any{"path": "u/admin/refused", "content": code, "language": "bash", "envs": c2.envs})
		if r.Status != 400 || !strings.Contains(r.Body, c2.want) {
			t.Errorf("envs %q: status %d body %q; want 400 naming %s", c2.envs, r.Status, r.Body, c2.want)
		}
	}
	if r := c.MustDo("GET", "/api/w/main/scripts/exists/p/u/admin/refused", nil, 200); r.Body != "false" {
		t.Fatalf("a refused script was saved: exists answers %s", r.Body)
	}
}
