package runtime_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"vane"
)

// TestWorker_DependenciesJob: a dependencies job's result is {"lock": ...},
// what Windmill's CLI reads from jobs/run/dependencies_async; Bash has no
// Deployer, so its lock is "" and the code is never run.
func TestWorker_DependenciesJob(t *testing.T) {
	s := MustStore(t)
	MustWorker(t, s, MustSandbox(t, ""), nil)
	j := vane.Job{ID: uuid.NewString(), Workspace: testWS, Kind: vane.JobDependencies, ScriptPath: "u/admin/deps",
		Language: vane.LangBash, RawCode: "echo ran > result.out\n", CreatedBy: "admin", Email: testActor.Email,
		PermissionedAs: "u/admin", Args: json.RawMessage(`{}`)}
	if err := s.PushJob(context.Background(), testActor, j); err != nil {
		t.Fatalf("PushJob: %v", err)
	}
	done := MustWait(t, s, j.ID)
	if !done.Success || string(done.Result) != `{"lock":""}` {
		t.Fatalf("success %v result %s, want {\"lock\":\"\"}", done.Success, done.Result)
	}
}
