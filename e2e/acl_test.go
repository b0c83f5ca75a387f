package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// aliceSecret is the value of alice's secret variable; no answer to anyone
// but alice and the admin may contain it.
const aliceSecret = "alice-s3cr3t-value-7f3a"

// TestACL_UserSpaces checks over HTTP that items under u/<user>/ belong to
// that user: another developer of the workspace neither reads, lists, runs,
// changes nor resolves them, and gets the answers a missing item gets; the
// admin reaches everything; items in a folder shared with g/all are every member's.
func TestACL_UserSpaces(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	admin := srv.Client()
	member := admin.MustAddMember
	alice, bob, olga := member("alice@example.com", false), member("bob@example.com", false), member("olga@example.com", true)

	alice.MustDo("POST", "/api/w/main/variables/create", map[string]any{"path": "u/alice/secret", "value": aliceSecret,
		"is_secret": true, "description": ""}, 201)
	alice.MustDo("POST", "/api/w/main/resources/create", map[string]any{"path": "u/alice/db", "resource_type": "postgres",
		"value": map[string]any{"host": "alice-db", "password": "$var:u/alice/secret"}}, 201)
	hash := alice.MustSaveScript("u/alice/hello", "bash", "echo hello\n")
	// f/ items: alice makes folder shared, where every member writes.
	alice.MustCreateFolder("main", "shared", map[string]bool{"g/all": true})
	alice.MustDo("POST", "/api/w/main/variables/create", map[string]any{"path": "f/shared/note", "value": "for everyone",
		"is_secret": false, "description": ""}, 201)
	alice.MustDo("POST", "/api/w/main/resources/create", map[string]any{"path": "f/shared/conn", "resource_type": "postgres",
		"value": map[string]any{"password": "$var:u/alice/secret"}}, 201)
	echo := "x=\"$1\"\necho \"x=$x\"\n"
	alice.MustSaveScript("f/shared/echo", "bash", echo)
	bob.MustSaveScript("u/bob/echo", "bash", echo)

	before := snapshotOf(t, admin)

	t.Run("reads are 404 as for a missing item", func(t *testing.T) {
		const noHash = "0123456789abcdef"
		tests := []struct {
			name, method, route, real, missing string
		}{
			{"script by path", "GET", "scripts/get/p/", "u/alice/hello", "u/alice/nope"},
			{"script by hash", "GET", "scripts/get/h/", hash, noHash},
			{"raw script", "GET", "scripts/raw/p/", "u/alice/hello", "u/alice/nope"},
			{"raw script with extension", "GET", "scripts/raw/p/", "u/alice/hello.sh", "u/alice/nope.sh"},
			{"script history", "GET", "scripts/history/p/", "u/alice/hello", "u/alice/nope"},
			{"deployment status", "GET", "scripts/deployment_status/h/", hash, noHash},
			{"run by path", "POST", "jobs/run/p/", "u/alice/hello", "u/alice/nope"},
			{"run by hash", "POST", "jobs/run/h/", hash, noHash},
			{"run and wait by path", "POST", "jobs/run_wait_result/p/", "u/alice/hello", "u/alice/nope"},
			{"run and wait by hash", "POST", "jobs/run_wait_result/h/", hash, noHash},
			{"variable", "GET", "variables/get/", "u/alice/secret", "u/alice/nope"},
			{"variable value", "GET", "variables/get_value/", "u/alice/secret", "u/alice/nope"},
			{"resource", "GET", "resources/get/", "u/alice/db", "u/alice/nope"},
			{"resource value", "GET", "resources/get_value/", "u/alice/db", "u/alice/nope"},
			{"resource interpolated", "GET", "resources/get_value_interpolated/", "u/alice/db", "u/alice/nope"},
			// Writes to an item bob may not even read: the same 404.
			{"update variable", "POST", "variables/update/", "u/alice/secret", "u/alice/nope"},
			{"delete variable", "DELETE", "variables/delete/", "u/alice/secret", "u/alice/nope"},
			{"update resource", "POST", "resources/update/", "u/alice/db", "u/alice/nope"},
			{"update resource value", "POST", "resources/update_value/", "u/alice/db", "u/alice/nope"},
			{"delete resource", "DELETE", "resources/delete/", "u/alice/db", "u/alice/nope"},
			{"archive script by path", "POST", "scripts/archive/p/", "u/alice/hello", "u/alice/nope"},
			{"archive script by hash", "POST", "scripts/archive/h/", hash, noHash},
		}
		body := map[string]any{"value": "stolen", "description": "stolen"}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := bob.Do(tt.method, "/api/w/main/"+tt.route+tt.real, body)
				missing := bob.Do(tt.method, "/api/w/main/"+tt.route+tt.missing, body)
				if got.Status != 404 || missing.Status != 404 {
					t.Fatalf("status %d (%q), and %d for a missing item; want 404 for both", got.Status, got.Body, missing.Status)
				}
				// The same words, but for the name asked for.
				if want := strings.ReplaceAll(missing.Body, tt.missing, tt.real); got.Body != want {
					t.Fatalf("body %q; a missing item gets %q", got.Body, missing.Body)
				}
				if strings.Contains(got.Body, aliceSecret) {
					t.Fatalf("the answer holds the secret: %q", got.Body)
				}
			})
		}
	})

	t.Run("exists answers false", func(t *testing.T) {
		for _, path := range []string{"scripts/exists/p/u/alice/hello", "variables/exists/u/alice/secret", "resources/exists/u/alice/db"} {
			if got := bob.MustDo("GET", "/api/w/main/"+path, nil, 200).Body; got != "false" {
				t.Errorf("bob: %s = %s, want false", path, got)
			}
			if got := alice.MustDo("GET", "/api/w/main/"+path, nil, 200).Body; got != "true" {
				t.Errorf("alice: %s = %s, want true", path, got)
			}
		}
	})

	t.Run("creating under another user's space is 403", func(t *testing.T) {
		tests := []struct {
			name, path string
			body       map[string]any
		}{
			{"new script", "scripts/create", map[string]any{"path": "u/alice/mine", "language": "bash", "content": "echo\n"}},
			{"new version of her script", "scripts/create", map[string]any{"path": "u/alice/hello", "language": "bash",
				"content": "echo owned\n", "parent_hash": hash}},
			{"new variable", "variables/create", map[string]any{"path": "u/alice/mine", "value": "x", "is_secret": false, "description": ""}},
			{"her existing variable", "variables/create", map[string]any{"path": "u/alice/secret", "value": "x", "is_secret": false, "description": ""}},
			{"new resource", "resources/create", map[string]any{"path": "u/alice/mine", "resource_type": "postgres", "value": 1}},
			{"upsert of her resource", "resources/create?update_if_exists=true", map[string]any{"path": "u/alice/db",
				"resource_type": "postgres", "value": 1}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := bob.Do("POST", "/api/w/main/"+tt.path, tt.body)
				if p := tt.body["path"].(string); r.Status != 403 || !strings.Contains(r.Body, p) {
					t.Fatalf("status %d body %q; want 403 naming %s", r.Status, r.Body, p)
				}
			})
		}
		// Moving his own variable into alice's space is creating it there.
		bob.MustDo("POST", "/api/w/main/variables/create", map[string]any{"path": "u/bob/v", "value": "b", "is_secret": false, "description": ""}, 201)
		if r := bob.Do("POST", "/api/w/main/variables/update/u/bob/v", map[string]any{"path": "u/alice/v"}); r.Status != 403 || !strings.Contains(r.Body, "u/alice/v") {
			t.Fatalf("moving into u/alice/: status %d body %q", r.Status, r.Body)
		}
		bob.MustDo("DELETE", "/api/w/main/variables/delete/u/bob/v", nil, 200)
	})

	t.Run("lists hold only what the caller may read", func(t *testing.T) {
		for _, tt := range []struct {
			name   string
			client *Client
			want   []string
			absent []string
		}{
			{"bob", bob, []string{"u/bob/echo", "f/shared/echo", "f/shared/note", "f/shared/conn"}, []string{"u/alice/"}},
			{"alice", alice, []string{"u/alice/hello", "u/alice/secret", "u/alice/db", "f/shared/echo"}, []string{"u/bob/"}},
			{"admin", admin, []string{"u/alice/hello", "u/alice/secret", "u/alice/db", "u/bob/echo"}, nil},
		} {
			t.Run(tt.name, func(t *testing.T) {
				got := strings.Join(listedPaths(t, tt.client), " ")
				for _, p := range tt.want {
					if !strings.Contains(got, p) {
						t.Errorf("lists lack %s: %s", p, got)
					}
				}
				for _, p := range tt.absent {
					if strings.Contains(got, p) {
						t.Errorf("lists show %s...: %s", p, got)
					}
				}
			})
		}
		// Pages are counted after the filter: bob's one script per page.
		var page []struct {
			Path string `json:"path"`
		}
		bob.MustDo("GET", "/api/w/main/scripts/list?per_page=1&page=2", nil, 200).JSON(t, &page)
		if len(page) != 1 || page[0].Path != "u/bob/echo" {
			t.Fatalf("bob's second page of one: %+v", page)
		}
	})

	t.Run("references resolve with the submitter's permissions", func(t *testing.T) {
		args := map[string]any{"x": "$var:u/alice/secret"}
		// Bob's own script, and a shared one, with alice's secret: failed
		// as for a missing variable, and the secret is nowhere.
		for _, path := range []string{"u/bob/echo", "f/shared/echo"} {
			id := bob.MustDo("POST", "/api/w/main/jobs/run/p/"+path, args, 201).Body
			result, ok := bob.WaitJob(id, time.Minute)
			logs := bob.MustDo("GET", "/api/w/main/jobs_u/get_logs/"+id, nil, 200).Body
			if ok || !strings.Contains(string(result), "cannot resolve arg $var:u/alice/secret: not found") {
				t.Fatalf("bob running %s with alice's secret: success %v result %s", path, ok, result)
			}
			if strings.Contains(string(result)+logs, aliceSecret) {
				t.Fatalf("the secret leaked to bob: result %s logs %q", result, logs)
			}
			sync := bob.Do("POST", "/api/w/main/jobs/run_wait_result/p/"+path, args)
			if sync.Status == 200 || strings.Contains(sync.Body, aliceSecret) {
				t.Fatalf("run_wait_result by bob: %d %s", sync.Status, sync.Body)
			}
		}
		// The same call by alice, and by the admin on bob's script, succeeds.
		if got := alice.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/f/shared/echo", args, 200).Body; got != `"x=`+aliceSecret+`"` {
			t.Fatalf("alice: %s", got)
		}
		if got := admin.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/bob/echo", args, 200).Body; got != `"x=`+aliceSecret+`"` {
			t.Fatalf("admin: %s", got)
		}
		// Interpolating a shared resource resolves with the caller's permissions.
		if r := bob.Do("GET", "/api/w/main/resources/get_value_interpolated/f/shared/conn", nil); r.Status != 404 || strings.Contains(r.Body, aliceSecret) {
			t.Fatalf("bob interpolating f/shared/conn: %d %s", r.Status, r.Body)
		}
		if got := alice.MustDo("GET", "/api/w/main/resources/get_value_interpolated/f/shared/conn", nil, 200).Body; !strings.Contains(got, aliceSecret) {
			t.Fatalf("alice interpolating f/shared/conn: %s", got)
		}
	})

	t.Run("owner, admin and f/ items", func(t *testing.T) {
		for _, c := range []*Client{alice, admin} {
			if got := c.MustDo("GET", "/api/w/main/variables/get_value/u/alice/secret", nil, 200).Body; got != `"`+aliceSecret+`"` {
				t.Fatalf("get_value: %s", got)
			}
			c.MustDo("GET", "/api/w/main/scripts/get/h/"+hash, nil, 200)
			c.MustDo("GET", "/api/w/main/resources/get/u/alice/db", nil, 200)
		}
		admin.MustDo("GET", "/api/w/main/scripts/raw/p/u/bob/echo.sh", nil, 200)
		for _, c := range []*Client{alice, bob, olga} {
			// Operators never load a variable through the API (seed 003).
			if c == olga {
				if r := c.Do("GET", "/api/w/main/variables/get_value/f/shared/note", nil); r.Status != 403 {
					t.Fatalf("operator loading f/shared/note: %d %s", r.Status, r.Body)
				}
				// Nor through the metadata routes.
				for _, path := range []string{"/api/w/main/variables/get/f/shared/note", "/api/w/main/variables/list",
					"/api/w/main/resources/get/f/shared/conn", "/api/w/main/resources/list"} {
					if body := c.MustDo("GET", path, nil, 200).Body; strings.Contains(body, "for everyone") || strings.Contains(body, aliceSecret) || strings.Contains(body, `"password"`) {
						t.Fatalf("operator reads a value through %s: %s", path, body)
					}
				}
			} else if got := c.MustDo("GET", "/api/w/main/variables/get_value/f/shared/note", nil, 200).Body; got != `"for everyone"` {
				t.Fatalf("f/shared/note: %s", got)
			}
			c.MustDo("GET", "/api/w/main/scripts/get/p/f/shared/echo", nil, 200)
			c.MustDo("GET", "/api/w/main/resources/get/f/shared/conn", nil, 200)
		}
		// An operator reads f/ items but never writes them.
		if r := olga.Do("POST", "/api/w/main/variables/update/f/shared/note", map[string]any{"value": "x"}); r.Status != 403 {
			t.Fatalf("operator updating f/shared/note: %d %s", r.Status, r.Body)
		}
	})

	// None of bob's refused requests changed anything of alice's.
	if after := snapshotOf(t, admin); after != before {
		t.Fatalf("refused requests changed alice's items:\nbefore %s\nafter  %s", before, after)
	}
}

// listedPaths returns the paths of the scripts, variables and resources c's
// lists show.
func listedPaths(tb testing.TB, c *Client) []string {
	tb.Helper()
	var out []string
	for _, list := range []string{"scripts/list?per_page=1000", "variables/list", "resources/list"} {
		var items []struct {
			Path string `json:"path"`
		}
		c.MustDo("GET", "/api/w/main/"+list, nil, 200).JSON(tb, &items)
		for _, it := range items {
			out = append(out, it.Path)
		}
	}
	return out
}

// snapshotOf returns, as the admin sees them, alice's items: her secret's
// value, her resource, her script's HEAD and history.
func snapshotOf(tb testing.TB, admin *Client) string {
	tb.Helper()
	parts := []string{
		admin.MustDo("GET", "/api/w/main/variables/get/u/alice/secret", nil, 200).Body,
		admin.MustDo("GET", "/api/w/main/resources/get/u/alice/db", nil, 200).Body,
		admin.MustDo("GET", "/api/w/main/scripts/get/p/u/alice/hello", nil, 200).Body,
		admin.MustDo("GET", "/api/w/main/scripts/history/p/u/alice/hello", nil, 200).Body,
	}
	enc, _ := json.Marshal(parts)
	return string(enc)
}

// TestACL_Imports checks that a script's imports of workspace scripts are
// resolved with its saver's permissions: their code goes into the saved
// version's lock, which the saver reads.
func TestACL_Imports(t *testing.T) {
	build := filepath.Join(toolsDir(t), "python-wasm", "current")
	if _, err := os.Stat(build); err != nil {
		t.Fatalf("the CPython wasm build is missing (%v): make deps installs it", err)
	}
	srv := MustStartServer(t, ServerOptions{Args: []string{"--languages", "bash,python3"}})
	admin := srv.Client()
	member := func(email string) *Client { return admin.MustAddMember(email, false) }
	alice, bob := member("alice@example.com"), member("bob@example.com")
	lib := alice.MustSaveScript("u/alice/lib", "python3", "def secret():\n    return 'alice-code-1b2c'\n")
	if lock, lockErr := deploymentStatus(t, alice, lib); lock == nil {
		t.Fatalf("u/alice/lib: %s", *lockErr)
	}
	uses := "from u.alice.lib import secret\n\ndef main():\n    return secret()\n"

	bobs := bob.MustSaveScript("u/bob/uses", "python3", uses)
	lock, lockErr := deploymentStatus(t, bob, bobs)
	if lockErr == nil || !strings.Contains(*lockErr, "there is no script at u/alice/lib") {
		t.Fatalf("bob importing u/alice/lib: lock %v, error logs %v", lock, lockErr)
	}
	if strings.Contains(bob.MustDo("GET", "/api/w/main/scripts/get/h/"+bobs, nil, 200).Body, "alice-code") {
		t.Fatal("bob's script version holds alice's code")
	}

	alices := alice.MustSaveScript("u/alice/uses", "python3", uses)
	if lock, lockErr := deploymentStatus(t, alice, alices); lock == nil {
		t.Fatalf("alice importing her own script: %s", *lockErr)
	}
	if got := alice.MustDo("POST", "/api/w/main/jobs/run_wait_result/p/u/alice/uses", map[string]any{}, 200).Body; got != `"alice-code-1b2c"` {
		t.Fatalf("alice's script: %s", got)
	}
}
