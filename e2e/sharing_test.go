package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Sharing end to end, over HTTP against the real binary: groups, folder
// roles and item ACLs give exactly the seeds' three item roles, and a change
// holds on the next request, on any node of a cluster.

// sharingActors are the members the sharing tests use.
type sharingActors struct {
	admin, alice, bob, carl, olga *Client
}

func newSharingActors(admin *Client) sharingActors {
	return sharingActors{admin: admin,
		alice: admin.MustAddMember("alice@example.com", false), bob: admin.MustAddMember("bob@example.com", false),
		carl: admin.MustAddMember("carl@example.com", false), olga: admin.MustAddMember("olga@example.com", true)}
}

// expect calls method path as c and fails unless the answer is want.
func expect(t *testing.T, who string, c *Client, method, path string, body any, want int) Response {
	t.Helper()
	r := c.Do(method, path, body)
	if r.Status != want {
		t.Fatalf("%s: %s %s: status %d, want %d; body %q", who, method, path, r.Status, want, r.Body)
	}
	return r
}

// TestSharing_GroupsFoldersACLs walks the seeds' sharing model with a group,
// item ACLs and a folder: an owner shares, a viewer only reads, a writer
// writes but neither archives nor shares, a non-member sees nothing, an
// operator never writes, and every removal holds on the next request.
func TestSharing_GroupsFoldersACLs(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	a := newSharingActors(srv.Client())
	const w = "/api/w/main"

	// A group: only admins create one (a name is a principal that others'
	// ACLs may name); the admin makes alice its owner; bob cannot change it.
	expect(t, "alice", a.alice, "POST", w+"/groups/create", map[string]any{"name": "devs"}, 403)
	expect(t, "admin", a.admin, "POST", w+"/groups/create", map[string]any{"name": "devs", "summary": "the devs"}, 201)
	expect(t, "admin", a.admin, "POST", w+"/groups/create", map[string]any{"name": "devs"}, 400)
	expect(t, "admin", a.admin, "POST", w+"/groups/create", map[string]any{"name": "all"}, 400)
	expect(t, "admin", a.admin, "POST", w+"/groups/create", map[string]any{"name": "../x"}, 400)
	expect(t, "admin", a.admin, "POST", w+"/acls/add/group_/devs", map[string]any{"owner": "u/alice", "write": true}, 200)
	expect(t, "alice", a.alice, "POST", w+"/groups/update/devs", map[string]any{"summary": "alice's devs"}, 200)
	expect(t, "bob", a.bob, "POST", w+"/groups/adduser/devs", map[string]any{"username": "bob"}, 403)
	expect(t, "olga", a.olga, "POST", w+"/groups/create", map[string]any{"name": "ops"}, 403)
	expect(t, "alice", a.alice, "POST", w+"/groups/adduser/devs", map[string]any{"username": "nosuch"}, 400)
	expect(t, "alice", a.alice, "POST", w+"/groups/adduser/devs", map[string]any{"username": "bob"}, 200)
	expect(t, "alice", a.alice, "POST", w+"/groups/adduser/devs", map[string]any{"username": "olga"}, 200)
	expect(t, "alice", a.alice, "POST", w+"/groups/adduser/all", map[string]any{"username": "bob"}, 400)
	var g struct {
		Members []string `json:"members"`
	}
	expect(t, "carl", a.carl, "GET", w+"/groups/get/devs", nil, 200).JSON(t, &g)
	if strings.Join(g.Members, ",") != "bob,olga" {
		t.Fatalf("devs members: %v", g.Members)
	}
	var mine []string
	expect(t, "bob", a.bob, "GET", w+"/groups/listnames?only_member_of=true", nil, 200).JSON(t, &mine)
	if strings.Join(mine, ",") != "all,devs" {
		t.Fatalf("bob's groups: %v", mine)
	}

	t.Run("item ACLs", func(t *testing.T) {
		expect(t, "alice", a.alice, "POST", w+"/variables/create", map[string]any{"path": "u/alice/v", "value": "alice's value", "is_secret": true, "description": ""}, 201)
		hash := a.alice.MustSaveScript("u/alice/s", "bash", "echo v1\n")
		for _, c := range []*Client{a.bob, a.carl} {
			expect(t, "before sharing", c, "GET", w+"/variables/get_value/u/alice/v", nil, 404)
			expect(t, "before sharing", c, "GET", w+"/acls/get/variable/u/alice/v", nil, 404)
		}
		// Only the owner shares; a reader cannot.
		expect(t, "bob", a.bob, "POST", w+"/acls/add/variable/u/alice/v", map[string]any{"owner": "u/bob", "write": true}, 404)
		expect(t, "alice", a.alice, "POST", w+"/acls/add/variable/u/alice/v", map[string]any{"owner": "bob"}, 400)
		// An entry must name someone: a later user or group of that name
		// would inherit it.
		expect(t, "alice", a.alice, "POST", w+"/acls/add/variable/u/alice/v", map[string]any{"owner": "u/nobody_yet"}, 400)
		expect(t, "alice", a.alice, "POST", w+"/acls/add/variable/u/alice/v", map[string]any{"owner": "g/finance"}, 400)
		expect(t, "alice", a.alice, "POST", w+"/acls/add/app/u/alice/v", map[string]any{"owner": "g/devs"}, 400)
		expect(t, "alice", a.alice, "POST", w+"/acls/add/variable/u/alice/v", map[string]any{"owner": "g/devs", "write": false}, 200)
		expect(t, "alice", a.alice, "POST", w+"/acls/add/script/u/alice/s", map[string]any{"owner": "g/devs", "write": false}, 200)
		var perms map[string]bool
		expect(t, "bob", a.bob, "GET", w+"/acls/get/variable/u/alice/v", nil, 200).JSON(t, &perms)
		if len(perms) != 1 || perms["g/devs"] {
			t.Fatalf("acls of u/alice/v: %v", perms)
		}
		// Viewer: reads, never writes or shares.
		if got := expect(t, "bob", a.bob, "GET", w+"/variables/get_value/u/alice/v", nil, 200).Body; got != `"alice's value"` {
			t.Fatalf("bob reads %s", got)
		}
		expect(t, "bob", a.bob, "GET", w+"/scripts/get/h/"+hash, nil, 200)
		expect(t, "bob", a.bob, "POST", w+"/variables/update/u/alice/v", map[string]any{"value": "bob's"}, 403)
		expect(t, "bob", a.bob, "POST", w+"/acls/add/variable/u/alice/v", map[string]any{"owner": "u/carl"}, 403)
		expect(t, "carl", a.carl, "GET", w+"/variables/get_value/u/alice/v", nil, 404)
		// An operator in the group reads the metadata, never the value.
		expect(t, "olga", a.olga, "GET", w+"/variables/get/u/alice/v", nil, 200)
		expect(t, "olga", a.olga, "GET", w+"/variables/get_value/u/alice/v", nil, 403)

		// Writer: writes, but neither archives nor shares.
		expect(t, "alice", a.alice, "POST", w+"/acls/add/script/u/alice/s", map[string]any{"owner": "g/devs", "write": true}, 200)
		expect(t, "alice", a.alice, "POST", w+"/acls/add/variable/u/alice/v", map[string]any{"owner": "g/devs", "write": true}, 200)
		expect(t, "bob", a.bob, "POST", w+"/variables/update/u/alice/v", map[string]any{"value": "bob's"}, 200)
		expect(t, "bob", a.bob, "POST", w+"/scripts/create", map[string]any{"path": "u/alice/s", "language": "bash", "content": "echo v2\n", "parent_hash": hash}, 201)
		expect(t, "bob", a.bob, "POST", w+"/scripts/archive/p/u/alice/s", nil, 403)
		expect(t, "bob", a.bob, "POST", w+"/acls/add/script/u/alice/s", map[string]any{"owner": "u/carl"}, 403)
		expect(t, "olga", a.olga, "POST", w+"/variables/update/u/alice/v", map[string]any{"value": "olga's"}, 403)

		// Removal holds on the next request.
		expect(t, "alice", a.alice, "POST", w+"/acls/remove/variable/u/alice/v", map[string]any{"owner": "g/devs"}, 200)
		expect(t, "bob", a.bob, "GET", w+"/variables/get_value/u/alice/v", nil, 404)
		// So does leaving the group.
		expect(t, "bob", a.bob, "GET", w+"/scripts/get/p/u/alice/s", nil, 200)
		expect(t, "alice", a.alice, "POST", w+"/groups/removeuser/devs", map[string]any{"username": "bob"}, 200)
		expect(t, "bob", a.bob, "GET", w+"/scripts/get/p/u/alice/s", nil, 404)
		expect(t, "alice", a.alice, "POST", w+"/groups/adduser/devs", map[string]any{"username": "bob"}, 200)
		// The owner archives.
		expect(t, "alice", a.alice, "POST", w+"/scripts/archive/p/u/alice/s", nil, 200)
	})

	t.Run("folders", func(t *testing.T) {
		expect(t, "olga", a.olga, "POST", w+"/folders/create", map[string]any{"name": "ops"}, 403)
		expect(t, "alice", a.alice, "POST", w+"/folders/create", map[string]any{"name": "team", "extra_perms": map[string]bool{"g/devs": false}}, 200)
		expect(t, "alice", a.alice, "POST", w+"/folders/create", map[string]any{"name": "team"}, 400)
		expect(t, "alice", a.alice, "POST", w+"/folders/create", map[string]any{"name": "bad", "extra_perms": map[string]bool{"devs": true}}, 400)
		expect(t, "alice", a.alice, "POST", w+"/folders/create", map[string]any{"name": "bad", "owners": []string{"g/finance"}}, 400)
		a.alice.MustSaveScript("f/team/job", "bash", "echo team\n")
		expect(t, "alice", a.alice, "POST", w+"/variables/create", map[string]any{"path": "f/team/conf", "value": "team conf", "is_secret": false, "description": ""}, 201)

		// Viewer through the folder: bob (g/devs) reads and runs, never writes.
		expect(t, "bob", a.bob, "GET", w+"/folders/get/team", nil, 200)
		expect(t, "bob", a.bob, "GET", w+"/variables/get_value/f/team/conf", nil, 200)
		expect(t, "bob", a.bob, "POST", w+"/jobs/run_wait_result/p/f/team/job", map[string]any{}, 200)
		expect(t, "bob", a.bob, "POST", w+"/variables/update/f/team/conf", map[string]any{"value": "x"}, 403)
		expect(t, "bob", a.bob, "POST", w+"/variables/create", map[string]any{"path": "f/team/new", "value": "x", "is_secret": false, "description": ""}, 403)
		expect(t, "bob", a.bob, "POST", w+"/folders/update/team", map[string]any{"extra_perms": map[string]bool{"u/bob": true}}, 403)
		// carl is not admitted: the folder and its items do not exist for him.
		expect(t, "carl", a.carl, "GET", w+"/folders/get/team", nil, 404)
		expect(t, "carl", a.carl, "GET", w+"/variables/get/f/team/conf", nil, 404)
		expect(t, "carl", a.carl, "POST", w+"/jobs/run/p/f/team/job", map[string]any{}, 404)
		var names []string
		expect(t, "carl", a.carl, "GET", w+"/folders/listnames", nil, 200).JSON(t, &names)
		if len(names) != 0 {
			t.Fatalf("carl lists folders %v", names)
		}

		// Writer through the folder: bob writes and creates, but does not
		// archive, share or change the folder.
		expect(t, "alice", a.alice, "POST", w+"/folders/update/team", map[string]any{"extra_perms": map[string]bool{"g/devs": true}}, 200)
		expect(t, "bob", a.bob, "POST", w+"/variables/update/f/team/conf", map[string]any{"value": "bob's conf"}, 200)
		expect(t, "bob", a.bob, "POST", w+"/variables/create", map[string]any{"path": "f/team/bobs", "value": "x", "is_secret": false, "description": ""}, 201)
		expect(t, "bob", a.bob, "POST", w+"/scripts/archive/p/f/team/job", nil, 403)
		expect(t, "bob", a.bob, "POST", w+"/acls/add/variable/f/team/conf", map[string]any{"owner": "u/carl"}, 403)
		expect(t, "bob", a.bob, "POST", w+"/folders/addowner/team", map[string]any{"owner": "u/bob"}, 403)
		// An operator admitted as a writer still only reads.
		expect(t, "olga", a.olga, "GET", w+"/scripts/get/p/f/team/job", nil, 200)
		expect(t, "olga", a.olga, "POST", w+"/variables/update/f/team/conf", map[string]any{"value": "x"}, 403)

		// Owner of the folder (its admin): archives and shares.
		expect(t, "alice", a.alice, "POST", w+"/folders/addowner/team", map[string]any{"owner": "u/bob"}, 200)
		expect(t, "bob", a.bob, "POST", w+"/acls/add/variable/f/team/conf", map[string]any{"owner": "u/carl", "write": false}, 200)
		expect(t, "carl", a.carl, "GET", w+"/variables/get_value/f/team/conf", nil, 200)
		expect(t, "bob", a.bob, "POST", w+"/scripts/archive/p/f/team/job", nil, 200)

		// Removal of the folder role holds on the next request.
		expect(t, "alice", a.alice, "POST", w+"/folders/removeowner/team", map[string]any{"owner": "u/bob"}, 200)
		expect(t, "alice", a.alice, "POST", w+"/folders/update/team", map[string]any{"extra_perms": map[string]bool{}}, 200)
		expect(t, "bob", a.bob, "GET", w+"/variables/get/f/team/conf", nil, 404)
		expect(t, "bob", a.bob, "GET", w+"/folders/get/team", nil, 404)
		// The item's own ACL still admits carl.
		expect(t, "carl", a.carl, "GET", w+"/variables/get_value/f/team/conf", nil, 200)

		// A folder with items is not deleted: whoever made a folder of the
		// same name later would own them.
		expect(t, "alice", a.alice, "DELETE", w+"/folders/delete/team", nil, 400)
		expect(t, "admin", a.admin, "DELETE", w+"/groups/delete/devs", nil, 200)
		expect(t, "admin", a.admin, "POST", w+"/groups/create", map[string]any{"name": "devs"}, 201)
		a.admin.MustSaveScript("g/devs/tool", "bash", "echo tool\n")
		expect(t, "admin", a.admin, "DELETE", w+"/groups/delete/devs", nil, 400)
	})

}

// tokenReadsScript reports, as JSON, the status of each variable path read
// through the job's own WM_TOKEN over bash's /dev/tcp.
const tokenReadsScript = `hostport=${BASE_INTERNAL_URL#http://}
hostport=${hostport%%/*}
status_of() {
  exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"
  printf 'GET /api/w/main/variables/get_value/%s HTTP/1.0\r\nHost: vane\r\nAuthorization: Bearer %s\r\n\r\n' "$1" "$WM_TOKEN" >&3
  read -r status_line <&3
  exec 3<&-
  set -- $status_line
  printf '%s' "$2"
}
printf '{"as":"%s","alice":"%s","bob":"%s","devs":"%s"}' "$WM_PERMISSIONED_AS" "$(status_of u/alice/secret)" "$(status_of u/bob/secret)" "$(status_of u/alice/for_devs)" > result.json
`

// TestSharing_RunOnBehalfOf: the same script, run by alice and by bob, sees
// through its WM_TOKEN what its runner sees; run permissioned_as a group, it
// sees what the group sees, for a member, and the run is refused to anyone
// else.
func TestSharing_RunOnBehalfOf(t *testing.T) {
	srv := MustStartServer(t, ServerOptions{})
	a := newSharingActors(srv.Client())
	const w = "/api/w/main"
	for _, who := range []struct {
		c    *Client
		name string
	}{{a.alice, "alice"}, {a.bob, "bob"}} {
		expect(t, who.name, who.c, "POST", w+"/variables/create", map[string]any{"path": "u/" + who.name + "/secret", "value": who.name + "'s", "is_secret": true, "description": ""}, 201)
	}
	expect(t, "alice", a.alice, "POST", w+"/variables/create", map[string]any{"path": "u/alice/for_devs", "value": "devs'", "is_secret": true, "description": ""}, 201)
	expect(t, "admin", a.admin, "POST", w+"/groups/create", map[string]any{"name": "devs"}, 201)
	expect(t, "admin", a.admin, "POST", w+"/acls/add/group_/devs", map[string]any{"owner": "u/alice", "write": true}, 200)
	expect(t, "alice", a.alice, "POST", w+"/groups/adduser/devs", map[string]any{"username": "bob"}, 200)
	expect(t, "alice", a.alice, "POST", w+"/acls/add/variable/u/alice/for_devs", map[string]any{"owner": "g/devs", "write": false}, 200)
	expect(t, "admin", a.admin, "POST", w+"/folders/create", map[string]any{"name": "tools", "extra_perms": map[string]bool{"g/all": false}}, 200)
	a.admin.MustSaveScript("f/tools/reads", "bash", tokenReadsScript)

	run := func(c *Client, query string, want int) map[string]string {
		t.Helper()
		r := expect(t, "run", c, "POST", w+"/jobs/run_wait_result/p/f/tools/reads"+query, map[string]any{}, want)
		if want != 200 {
			return nil
		}
		var out map[string]string
		if err := json.Unmarshal([]byte(r.Body), &out); err != nil {
			t.Fatalf("result %q: %v", r.Body, err)
		}
		return out
	}
	check := func(who string, got map[string]string, want string) {
		t.Helper()
		if s := fmt.Sprintf("%s alice=%s bob=%s devs=%s", got["as"], got["alice"], got["bob"], got["devs"]); s != want {
			t.Fatalf("%s: the job saw %s, want %s", who, s, want)
		}
	}
	check("alice", run(a.alice, "", 200), "u/alice alice=200 bob=404 devs=200")
	check("bob", run(a.bob, "", 200), "u/bob alice=404 bob=200 devs=200")
	// As the group, bob's job sees the group's share and not bob's own.
	check("bob as g/devs", run(a.bob, "?permissioned_as="+url.QueryEscape("g/devs"), 200), "g/devs alice=404 bob=404 devs=200")
	// carl is not in devs; nobody passes as another user.
	run(a.carl, "?permissioned_as=g/devs", 403)
	run(a.carl, "?permissioned_as=u/alice", 400)
	// The job records whom it ran as.
	id := expect(t, "bob", a.bob, "POST", w+"/jobs/run/p/f/tools/reads?permissioned_as=g/devs", map[string]any{}, 201).Body
	if _, ok := a.bob.WaitJob(id, time.Minute); !ok {
		t.Fatalf("job %s as g/devs failed", id)
	}
	var job struct {
		PermissionedAs string `json:"permissioned_as"`
		CreatedBy      string `json:"created_by"`
	}
	expect(t, "bob", a.bob, "GET", w+"/jobs_u/get/"+id, nil, 200).JSON(t, &job)
	if job.PermissionedAs != "g/devs" || job.CreatedBy != "bob" {
		t.Fatalf("job as g/devs: %+v", job)
	}
}

// TestSharing_FollowerSeesChangesAtOnce: on a 3-node cluster, a share made
// through the leader admits a member on a follower at the next request, and
// its removal shuts him out at the next request, for an item ACL and a
// folder role.
func TestSharing_FollowerSeesChangesAtOnce(t *testing.T) {
	c := MustStartCluster(t, 3)
	l := c.MustLeader(10 * time.Second)
	f := (l + 1) % 3
	admin := c.Nodes[l].Client()
	alice := admin.MustAddMember("alice@example.com", false)
	bobTok := admin.MustAddMember("bob@example.com", false).token
	bobOnFollower := c.Nodes[f].Client().WithToken(bobTok)
	const w = "/api/w/main"

	expect(t, "admin", admin, "POST", w+"/groups/create", map[string]any{"name": "devs"}, 201)
	expect(t, "admin", admin, "POST", w+"/acls/add/group_/devs", map[string]any{"owner": "u/alice", "write": true}, 200)
	expect(t, "alice", alice, "POST", w+"/variables/create", map[string]any{"path": "u/alice/v", "value": "shared", "is_secret": true, "description": ""}, 201)
	expect(t, "alice", alice, "POST", w+"/folders/create", map[string]any{"name": "team"}, 200)
	expect(t, "alice", alice, "POST", w+"/variables/create", map[string]any{"path": "f/team/v", "value": "team", "is_secret": false, "description": ""}, 201)
	expect(t, "alice", alice, "POST", w+"/acls/add/variable/u/alice/v", map[string]any{"owner": "g/devs", "write": false}, 200)
	for round := 0; round < 3; round++ {
		expect(t, "bob on a follower", bobOnFollower, "GET", w+"/variables/get_value/u/alice/v", nil, 404)
		expect(t, "alice", alice, "POST", w+"/groups/adduser/devs", map[string]any{"username": "bob"}, 200)
		expect(t, "bob on a follower", bobOnFollower, "GET", w+"/variables/get_value/u/alice/v", nil, 200)
		expect(t, "alice", alice, "POST", w+"/groups/removeuser/devs", map[string]any{"username": "bob"}, 200)

		expect(t, "bob on a follower", bobOnFollower, "GET", w+"/variables/get/f/team/v", nil, 404)
		expect(t, "alice", alice, "POST", w+"/folders/update/team", map[string]any{"extra_perms": map[string]bool{"u/bob": false}}, 200)
		expect(t, "bob on a follower", bobOnFollower, "GET", w+"/variables/get/f/team/v", nil, 200)
		expect(t, "alice", alice, "POST", w+"/folders/update/team", map[string]any{"extra_perms": map[string]bool{}}, 200)
	}
	expect(t, "bob on a follower", bobOnFollower, "GET", w+"/variables/get/f/team/v", nil, 404)
}
