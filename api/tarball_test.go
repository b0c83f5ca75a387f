package api_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"vane"
	"vane/api"
)

// getRaw sends GET path (under the workspace) as user and returns the
// status and the body's bytes.
func (s *aclServer) getRaw(tb testing.TB, user, path string) (int, []byte) {
	tb.Helper()
	req, err := http.NewRequest("GET", s.url+"/api/w/"+aclWS+"/"+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.tokens[user])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, b
}

// mustExport fetches the workspace export as user with query q and returns
// its files by name.
func (s *aclServer) mustExport(tb testing.TB, user, q string) map[string]string {
	tb.Helper()
	code, body := s.getRaw(tb, user, "workspaces/tarball?"+q)
	if code != 200 {
		tb.Fatalf("tarball?%s as %s: %d %s", q, user, code, body)
	}
	files := map[string]string{}
	if strings.Contains(q, "archive_type=zip") {
		zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
		if err != nil {
			tb.Fatalf("not a zip: %v", err)
		}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				tb.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			files[f.Name] = string(b)
		}
		return files
	}
	tr := tar.NewReader(bytes.NewReader(body))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			tb.Fatalf("not a tar: %v", err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
}

func names(files map[string]string) []string {
	var out []string
	for n := range files {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// TestTarball_Export: the export holds, in Windmill's layout, what the
// caller may read and nothing else; a secret's value only when plain_secret
// asks and the caller may load values (not an operator); operators get
// only the kinds the workspace lets them view.
func TestTarball_Export(t *testing.T) {
	s := MustACLServer(t)
	s.mustScript(t, "u/alice/hello", nil)
	s.mustScript(t, "u/bob/private", nil)
	for _, c := range []struct {
		user, route string
		body        map[string]any
	}{
		{"alice", "variables/create", map[string]any{"path": "u/alice/greeting", "value": "hi", "is_secret": false, "description": "d"}},
		{"alice", "variables/create", map[string]any{"path": "u/alice/token", "value": "s3cr3t-value", "is_secret": true, "description": ""}},
		{"bob", "variables/create", map[string]any{"path": "u/bob/mine", "value": "bob's", "is_secret": false, "description": ""}},
		{"alice", "resources/create", map[string]any{"path": "u/alice/db", "value": map[string]any{"host": "h"}, "resource_type": "any"}},
		{"bob", "resources/create", map[string]any{"path": "u/bob/db", "value": map[string]any{"host": "b"}, "resource_type": "any"}},
		{"alice", "folders/create", map[string]any{"name": "shared", "summary": "a folder"}},
		{"ada", "groups/create", map[string]any{"name": "team", "summary": "t"}},
	} {
		if code, msg := s.do(t, c.user, "POST", c.route, c.body); code != 201 && code != 200 {
			t.Fatalf("%s %s: %d %s", c.user, c.route, code, msg)
		}
	}

	for _, q := range []string{"archive_type=zip", "archive_type=tar", ""} {
		files := s.mustExport(t, "alice", q+"&default_ts=bun&preserve_extra_perms=true")
		for _, want := range []string{"u/alice/hello.sh", "u/alice/hello.script.json", "u/alice/greeting.variable.json",
			"u/alice/db.resource.json", "f/shared/folder.meta.json"} {
			if _, ok := files[want]; !ok {
				t.Errorf("%q: %s is missing from %v", q, want, names(files))
			}
		}
		for name := range files {
			if strings.HasPrefix(name, "u/bob/") || strings.HasPrefix(name, "groups/") || strings.Contains(name, ".schedule.") {
				t.Errorf("%q: %s is in alice's export: bob's items and what was not asked for stay out", q, name)
			}
			if strings.Contains(files[name], "s3cr3t-value") || name == "u/alice/token.variable.json" {
				t.Errorf("%q: the secret is in %s without plain_secret", q, name)
			}
		}
	}
	files := s.mustExport(t, "alice", "archive_type=zip")
	if got := files["u/alice/hello.sh"]; got != "echo hi\n" {
		t.Errorf("the script's code: %q", got)
	}
	var meta map[string]any
	if err := json.Unmarshal([]byte(files["u/alice/hello.script.json"]), &meta); err != nil {
		t.Fatalf("script.json: %v", err)
	}
	for _, k := range []string{"summary", "description", "kind", "lock", "schema"} {
		if _, ok := meta[k]; !ok {
			t.Errorf("script.json has no %s: %v", k, meta)
		}
	}
	for _, k := range []string{"path", "workspace_id", "created_by", "hash", "content"} {
		if _, ok := meta[k]; ok && k != "hash" && k != "content" {
			t.Errorf("script.json keeps %s, which Windmill strips: %v", k, meta)
		}
	}
	var variable map[string]any
	if err := json.Unmarshal([]byte(files["u/alice/greeting.variable.json"]), &variable); err != nil || variable["value"] != "hi" ||
		variable["is_secret"] != false || variable["description"] != "d" || variable["path"] != nil {
		t.Errorf("greeting.variable.json: %v %v", variable, err)
	}
	var folder map[string]any
	if err := json.Unmarshal([]byte(files["f/shared/folder.meta.json"]), &folder); err != nil || folder["summary"] != "a folder" ||
		folder["extra_perms"] == nil || folder["owners"] == nil || folder["name"] != nil {
		t.Errorf("folder.meta.json: %v %v", folder, err)
	}

	t.Run("plain secrets for those who may load them", func(t *testing.T) {
		files := s.mustExport(t, "alice", "archive_type=zip&plain_secret=true&skip_secrets=false")
		if got := files["u/alice/token.variable.json"]; !strings.Contains(got, `"value": "s3cr3t-value"`) || !strings.Contains(got, `"is_secret": true`) {
			t.Fatalf("token.variable.json: %q", got)
		}
		files = s.mustExport(t, "alice", "archive_type=zip&plain_secret=true&skip_secrets=true")
		if _, ok := files["u/alice/token.variable.json"]; ok {
			t.Fatal("skip_secrets still exported the secret")
		}
	})

	t.Run("groups and everything for an admin", func(t *testing.T) {
		files := s.mustExport(t, "ada", "archive_type=zip&include_groups=true")
		for _, want := range []string{"u/bob/private.sh", "u/bob/mine.variable.json", "u/bob/db.resource.json", "groups/team.group.json"} {
			if _, ok := files[want]; !ok {
				t.Errorf("%s is missing from the admin's export %v", want, names(files))
			}
		}
		if _, ok := files["groups/all.group.json"]; ok {
			t.Error("the group all is exported; Windmill leaves it out")
		}
	})

	t.Run("an operator", func(t *testing.T) {
		op := mustOperator(t, s, "olga")
		if err := s.store.SetOperatorSettings(context.Background(), vane.Actor{Email: "ada@example.com", Username: "ada"}, aclWS,
			vane.OperatorSettings{Resources: true}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			route string
			body  map[string]any
		}{
			{"variables/create", map[string]any{"path": "u/olga/v", "value": "v", "is_secret": false, "description": ""}},
			{"variables/create", map[string]any{"path": "u/olga/sec", "value": "olga-secret", "is_secret": true, "description": ""}},
			{"resources/create", map[string]any{"path": "u/olga/r", "value": map[string]any{}, "resource_type": "any"}},
		} {
			if code, msg := s.do(t, "ada", "POST", c.route, c.body); code != 201 {
				t.Fatalf("%s: %d %s", c.route, code, msg)
			}
		}
		files := s.mustExport(t, op, "archive_type=zip&plain_secret=true&skip_secrets=false&include_groups=true")
		if _, ok := files["u/olga/r.resource.json"]; !ok {
			t.Errorf("the operator's own resource is missing from %v (resources are viewable)", names(files))
		}
		if err := s.store.SetOperatorSettings(context.Background(), vane.Actor{Email: "ada@example.com", Username: "ada"}, aclWS,
			vane.DefaultOperatorSettings); err != nil {
			t.Fatal(err)
		}
		all := s.mustExport(t, op, "archive_type=zip&plain_secret=true&skip_secrets=false&include_groups=true")
		if _, ok := all["u/olga/v.variable.json"]; !ok {
			t.Errorf("with variables viewable, the operator's variable is missing from %v", names(all))
		}
		if _, ok := all["u/olga/sec.variable.json"]; ok {
			t.Error("an operator got a secret's value: operators never load values")
		}
		for name := range files {
			if strings.HasSuffix(name, ".variable.json") || strings.HasPrefix(name, "groups/") || strings.HasSuffix(name, "folder.meta.json") {
				t.Errorf("%s is in the export of an operator the workspace does not let view it", name)
			}
		}
	})

	if code, body := s.getRaw(t, "alice", "workspaces/tarball?archive_type=rar"); code != 400 || !strings.Contains(string(body), "Invalid Archive Type rar") {
		t.Fatalf("archive_type=rar: %d %s", code, body)
	}
}

// mustOperator adds username to the workspace as an operator with a token
// and returns the name its token is kept under.
func mustOperator(tb testing.TB, s *aclServer, username string) string {
	tb.Helper()
	ctx := context.Background()
	root := vane.Actor{Email: "ada@example.com", Username: "ada"}
	email := username + "@example.com"
	if err := s.store.CreateUser(ctx, root, vane.User{Email: email}); err != nil {
		tb.Fatal(err)
	}
	if err := s.store.AddMember(ctx, root, vane.Member{Workspace: aclWS, Email: email, Username: username, Operator: true}); err != nil {
		tb.Fatal(err)
	}
	secret := api.NewTokenSecret()
	tok := vane.Token{TokenHash: api.HashToken(secret), Prefix: secret[:api.TokenPrefixLen], Email: email, CreatedAt: time.Now()}
	if err := s.store.CreateToken(ctx, root, tok); err != nil {
		tb.Fatal(err)
	}
	s.tokens[username] = secret
	return username
}
