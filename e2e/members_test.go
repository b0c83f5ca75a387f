package e2e

import "testing"

// TestWorkspaces_CreateRequireSuperadmin starts vane with Windmill's
// CREATE_WORKSPACE_REQUIRE_SUPERADMIN=true: a member who is not a
// superadmin cannot create a workspace (403, and none is made); the
// superadmin can.
func TestWorkspaces_CreateRequireSuperadmin(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{Env: []string{"CREATE_WORKSPACE_REQUIRE_SUPERADMIN=true"}})
	admin := srv.Client()
	bob := admin.MustAddMember("bob@example.com", false)
	if r := bob.Do("GET", "/api/workspaces/create_workspace_require_superadmin", nil); r.Status != 200 || r.Body != "true" {
		t.Fatalf("create_workspace_require_superadmin: %d %q, want true", r.Status, r.Body)
	}
	bob.MustDo("POST", "/api/workspaces/create", M{"id": "bobs", "name": "Bob's"}, 403)
	if r := admin.MustDo("POST", "/api/workspaces/exists", M{"id": "bobs"}, 200); r.Body != "false" {
		t.Fatalf("a refused workspace exists: %s", r.Body)
	}
	admin.MustDo("POST", "/api/workspaces/create", M{"id": "team", "name": "Team"}, 201)
}
