package runtime_test

import (
	"context"
	"strings"
	"testing"

	"vane"
)

// TestWorker_WaitsForDeployment: a job of a version whose dependencies step
// is still running waits for it and then runs; a job of a version whose
// deployment failed fails with the build's message instead of running.
func TestWorker_WaitsForDeployment(t *testing.T) {
	s := MustStore(t)
	MustWorker(t, s, MustSandbox(t, ""), nil)
	ctx := context.Background()

	save := func(path string) vane.Hash {
		sc := vane.Script{Workspace: testWS, Path: path, Content: "echo deployed-ok", Language: vane.LangBash,
			Kind: "script", CreatedBy: "admin", DeploymentStatus: vane.DeployPending}
		sc.Hash = vane.ScriptHash(&sc)
		if err := s.CreateScript(ctx, testActor, sc); err != nil {
			t.Fatalf("CreateScript: %v", err)
		}
		return sc.Hash
	}

	t.Run("pending then ready", func(t *testing.T) {
		hash := save("u/admin/pending")
		id := MustPush(t, s, "u/admin/pending", hash, "", `{}`)
		// The job is claimed but must not complete while the version is pending.
		poll(t, 30e9, "the job to be claimed", func() bool {
			j, err := s.GetJob(testWS, id)
			return err == nil && j.Status == vane.JobRunning
		})
		if j, _ := s.GetJob(testWS, id); j.Finished() {
			t.Fatalf("job finished before its script was deployed: %s", j.Result)
		}
		if err := s.SetScriptDeployment(ctx, testWS, hash, vane.DeployReady, "lock-1", ""); err != nil {
			t.Fatalf("SetScriptDeployment: %v", err)
		}
		j := MustWait(t, s, id)
		if !j.Success || string(j.Result) != `"deployed-ok"` {
			t.Fatalf("job after deployment: success %v result %s", j.Success, j.Result)
		}
	})

	t.Run("failed", func(t *testing.T) {
		hash := save("u/admin/broken")
		if err := s.SetScriptDeployment(ctx, testWS, hash, vane.DeployFailed, "", "compile: undefined: x"); err != nil {
			t.Fatalf("SetScriptDeployment: %v", err)
		}
		j := MustWait(t, s, MustPush(t, s, "u/admin/broken", hash, "", `{}`))
		if j.Success {
			t.Fatalf("a job of a failed deployment succeeded: %s", j.Result)
		}
		for _, want := range []string{"DeploymentFailed", "compile: undefined: x"} {
			if !strings.Contains(string(j.Result), want) {
				t.Errorf("result %s lacks %q", j.Result, want)
			}
		}
	})
}
