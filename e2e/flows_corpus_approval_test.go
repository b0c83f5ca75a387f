package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Suspend (approval steps), early return, cancel, and the routes that read
// a running flow, from the flow corpus (flows_corpus_test.go).

// approvalFlow suspends after step a for required resumes (suspend holds
// further Suspend fields); step b returns resume, resumes and approvers.
func approvalFlow(required int, suspend M, extra M) M {
	s := M{"required_events": required, "timeout": 30}
	for k, v := range suspend {
		s[k] = v
	}
	return flowValue(extra,
		with(bash("a", "echo approve me\n", nil), M{"suspend": s}),
		bash("b", "r=\"$1\"\nrs=\"$2\"\nap=\"$3\"\necho \"{\\\"r\\\": $r, \\\"rs\\\": $rs, \\\"ap\\\": $ap}\" > result.json\n",
			in{"r": "JSON.stringify(resume)", "rs": "JSON.stringify(resumes)", "ap": "JSON.stringify(approvers)"}))
}

// wantResult waits for flow job id and fails unless it ended as wanted.
func wantResult(t *testing.T, c *Client, id string, success bool, want string) {
	t.Helper()
	result, ok := c.WaitJob(id, 2*time.Minute)
	if ok != success || !jsonEqual(result, []byte(want)) {
		t.Errorf("flow ended success=%v with %s, want success=%v with %s", ok, compact(result), success, compact([]byte(want)))
	}
}

// wantStillSuspended fails unless flow job id still waits for resumes.
func wantStillSuspended(t *testing.T, c *Client, id, after string) {
	t.Helper()
	j := c.MustGetJob(id)
	if j.Type != "QueuedJob" || j.FlowStatus == nil || len(j.FlowStatus.Modules) < 2 || j.FlowStatus.Modules[1].Type != "WaitingForEvents" {
		st, _ := json.Marshal(j.FlowStatus)
		t.Fatalf("after %s the flow is %s with flow_status %s, want it still suspended", after, j.Type, st)
	}
}

// wantStatus fails unless r has status code want.
func wantStatus(t *testing.T, what string, r Response, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("%s: %d %s, want %d", what, r.Status, r.Body, want)
	}
}

func suspendCases(t *testing.T, admin *Client) {
	admin = admin.For(t)
	alice := admin.MustAddMember("alice@example.com", false)
	bob := admin.MustAddMember("bob@example.com", false)
	anonymous := admin.WithToken("")

	t.Run("resume URLs, forged and replayed", func(t *testing.T) {
		t.Parallel()
		c, anon := admin.For(t), anonymous.For(t)
		c.MustSaveFlow("f/corpus/approval_urls", approvalFlow(2, nil, nil))
		id := c.MustRunFlow("f/corpus/approval_urls", M{})
		step := c.WaitSuspended(id)
		// worker_flow.rs push_next_flow_job: the module after a suspend
		// waits (WaitingForEvents) for required_events resumes of the
		// suspending step's job.
		if m := c.MustGetJob(id).FlowStatus.Modules[1]; m.ID != "b" || m.Job != step || m.Count == nil || *m.Count != 2 {
			t.Errorf("waiting module: %+v", m)
		}
		u1 := c.MustResumeURLs(step, 1, "")
		if !strings.Contains(u1.Resume, "/api/w/main/jobs_u/resume/"+step+"/1/") || !strings.Contains(u1.Cancel, "/api/w/main/jobs_u/cancel/"+step+"/1/") {
			t.Fatalf("resume URLs %+v", u1)
		}
		// jobs.rs resume_suspended_job checks the URL's HMAC signature (of
		// the job, the resume id and the approver) before anything; issue
		// 15: a forged or tampered one is a 4xx (Windmill answers 500) and
		// the flow stays suspended.
		forged := u1.Resume[:len(u1.Resume)-4] + "0000"
		if strings.HasSuffix(u1.Resume, "0000") {
			forged = u1.Resume[:len(u1.Resume)-4] + "1111"
		}
		wantStatus(t, "a forged signature", anon.DoURL("POST", forged, M{"n": 0}), 403)
		tampered := strings.Replace(u1.Resume, "/"+step+"/1/", "/"+step+"/2/", 1)
		wantStatus(t, "a signature for another resume id", anon.DoURL("POST", tampered, M{"n": 0}), 403)
		wantStillSuspended(t, c, id, "forged resumes")

		wantStatus(t, "the first resume", anon.DoURL("POST", u1.Resume, M{"n": 1}), 201)
		// Issue 15: a replayed resume URL is refused (4xx), and counts once.
		wantStatus(t, "the first resume replayed", anon.DoURL("POST", u1.Resume, M{"n": 1}), 409)
		wantStillSuspended(t, c, id, "one resume of two")

		// A URL for approver bob: the approver is part of what is signed.
		u2 := c.MustResumeURLs(step, 2, "bob")
		wantStatus(t, "bob's resume", anon.DoURL("POST", u2.Resume, M{"n": 2}), 201)
		// spec section 3 and worker_flow.rs: after a suspend the next step
		// sees resume (the last payload), resumes (all, in order) and
		// approvers ("anonymous" for a resume by no one).
		wantResult(t, c, id, true, `{"r": {"n": 2}, "rs": [{"n": 1}, {"n": 2}], "ap": ["anonymous", "bob"]}`)
		if r := anon.DoURL("POST", u2.Resume, M{"n": 3}); r.Status < 400 || r.Status > 499 {
			t.Errorf("a resume after the flow ended: %d %s, want a 4xx", r.Status, r.Body)
		}
	})

	t.Run("cancel URL disapproves", func(t *testing.T) {
		t.Parallel()
		c := admin.For(t)
		id := c.MustPreviewFlow(approvalFlow(1, nil, nil), M{})
		u := c.MustResumeURLs(c.WaitSuspended(id), 7, "ann")
		wantStatus(t, "the cancel URL", anonymous.For(t).DoURL("POST", u.Cancel, M{}), 201)
		// worker_flow.rs: a disapproval fails the flow with
		// SuspendedDisapproved, "Disapproved by <approver>".
		wantResult(t, c, id, false, `{"error": {"name": "SuspendedDisapproved", "message": "Disapproved by ann"}}`)
		noJobFor(t, c, id, "b@0")
	})

	t.Run("suspend timeout", func(t *testing.T) {
		t.Parallel()
		c := admin.For(t)
		id := c.MustPreviewFlow(approvalFlow(1, M{"timeout": 1}, nil), M{})
		// worker_flow.rs: a suspend not resumed within its timeout ends the
		// flow with SuspendedTimedOut.
		wantResult(t, c, id, false, `{"error": {"name": "SuspendedTimedOut", "message": "Timed out waiting to be resumed"}}`)
		noJobFor(t, c, id, "b@0")
	})

	t.Run("resume as the flow's owner", func(t *testing.T) {
		t.Parallel()
		a, b := alice.For(t), bob.For(t)
		a.MustSaveFlow("u/alice/approval", approvalFlow(1, nil, nil))
		id := a.MustRunFlow("u/alice/approval", M{})
		a.WaitSuspended(id)
		// jobs.rs resume_suspended_flow_as_owner: require_owner_of_path;
		// bob may not even see alice's job.
		wantStatus(t, "bob resumes alice's flow", b.Do("POST", "/api/w/main/jobs/flow/resume/"+id, M{"by": "bob"}), 404)
		wantStillSuspended(t, a, id, "bob's resume")
		wantStatus(t, "alice resumes her flow", a.Do("POST", "/api/w/main/jobs/flow/resume/"+id, M{"by": "alice"}), 201)
		// The owner resumes as themselves: approvers names them.
		wantResult(t, a, id, true, `{"r": {"by": "alice"}, "rs": [{"by": "alice"}], "ap": ["alice"]}`)
	})

	t.Run("self_approval_disabled and user_auth_required", func(t *testing.T) {
		t.Parallel()
		a, c := alice.For(t), admin.For(t)
		a.MustSaveFlow("u/alice/self", approvalFlow(1, M{"self_approval_disabled": true, "user_auth_required": true}, nil))
		id := a.MustRunFlow("u/alice/self", M{})
		step := a.WaitSuspended(id)
		// Windmill docs, flows/flow_approval "Permissions": with
		// "Require approvers to be logged in" only signed-in users approve;
		// with "Disable self-approval" the user who ran the flow may not.
		wantStatus(t, "alice approves her own run", a.Do("POST", "/api/w/main/jobs/flow/resume/"+id, M{}), 403)
		u := a.MustResumeURLs(step, 3, "")
		wantStatus(t, "an anonymous approval", anonymous.For(t).DoURL("POST", u.Resume, M{}), 403)
		wantStillSuspended(t, a, id, "refused approvals")
		wantStatus(t, "the admin approves, signed in", c.DoURL("POST", u.Resume, M{"ok": true}), 201)
		wantResult(t, a, id, true, `{"r": {"ok": true}, "rs": [{"ok": true}], "ap": ["admin"]}`)
	})

	t.Run("user_groups_required", func(t *testing.T) {
		t.Parallel()
		c, b := admin.For(t), bob.For(t)
		// openflow Suspend.user_groups_required (an InputTransform) and
		// Windmill docs flows/flow_approval "Permissions": only a signed-in
		// member of one of the groups approves (in vane every member is in
		// group all and no one in any other yet, vane.GroupAll).
		all := c.MustPreviewFlow(approvalFlow(1, M{"user_auth_required": true, "user_groups_required": static([]string{"all"})}, nil), M{})
		approvers := c.MustPreviewFlow(approvalFlow(1, M{"user_auth_required": true, "user_groups_required": static([]string{"approvers"})}, nil), M{})
		uAll := c.MustResumeURLs(c.WaitSuspended(all), 4, "")
		uApprovers := c.MustResumeURLs(c.WaitSuspended(approvers), 4, "")
		// worker_flow.rs: the conditions are kept in flow_status.approval_conditions.
		if fs := c.MustGetJob(approvers).FlowStatus; !jsonEqual(fs.ApprovalConditions, []byte(`{"user_auth_required": true, "user_groups_required": ["approvers"], "self_approval_disabled": false}`)) {
			t.Errorf("flow_status approval_conditions: %s", fs.ApprovalConditions)
		}
		wantStatus(t, "anonymous, group all", anonymous.For(t).DoURL("POST", uAll.Resume, M{}), 403)
		wantStatus(t, "bob, group approvers", b.DoURL("POST", uApprovers.Resume, M{}), 403)
		wantStillSuspended(t, c, approvers, "bob's refused approval")
		wantStatus(t, "bob, group all", b.DoURL("POST", uAll.Resume, M{"bob": true}), 201)
		wantResult(t, c, all, true, `{"r": {"bob": true}, "rs": [{"bob": true}], "ap": ["bob"]}`)
		// The other one waits for an approver no one is: cancel it (queue
		// jobs.rs cancel_single_job: a canceled flow ends with the Canceled
		// error).
		wantStatus(t, "cancel", c.Do("POST", "/api/w/main/jobs_u/queue/cancel/"+approvers, M{"reason": "no approver"}), 200)
		wantResult(t, c, approvers, false, `{"error": {"name": "Canceled", "message": "Job canceled: no approver by admin", "reason": "no approver", "canceler": "admin"}}`)
	})

	t.Run("early_return", func(t *testing.T) {
		t.Parallel()
		c := admin.For(t)
		c.MustSaveFlow("f/corpus/early", approvalFlow(1, nil, M{"early_return": "a"}))
		// Spec section 1.3: with early_return, run_wait_result answers the
		// node's result while the rest of the flow goes on.
		r := c.MustDo("POST", "/api/w/main/jobs/run_wait_result/f/f/corpus/early", M{}, 200)
		if r.Body != `"approve me"` {
			t.Fatalf("early result %s, want \"approve me\"", r.Body)
		}
		id := latestFlowJob(t, c, "f/corpus/early")
		c.WaitSuspended(id) // still running, past the early return
		wantStatus(t, "resume", c.Do("POST", "/api/w/main/jobs/flow/resume/"+id, M{"late": true}), 201)
		wantResult(t, c, id, true, `{"r": {"late": true}, "rs": [{"late": true}], "ap": ["admin"]}`)
	})
}

func cancelCases(t *testing.T, admin *Client) {
	admin = admin.For(t)
	t.Run("cancel a running flow", func(t *testing.T) {
		c := admin.For(t)
		id := c.MustPreviewFlow(flowValue(nil, bash("a", "sleep 30\necho late\n", nil), bash("b", "echo b\n", nil)), M{})
		var step string
		c.WaitFlowState(id, time.Minute, "running its step", func(j corpusJob) bool {
			if j.FlowStatus == nil || j.FlowStatus.Modules[0].Job == "" {
				return false
			}
			step = j.FlowStatus.Modules[0].Job
			return c.MustGetJob(step).Running
		})
		wantStatus(t, "cancel", c.Do("POST", "/api/w/main/jobs_u/queue/cancel/"+id, M{"reason": "stop it"}), 200)
		// queue jobs.rs cancel_single_job: the flow ends with {error: {name:
		// Canceled, message: "Job canceled: <reason> by <who>", reason,
		// canceler}}.
		wantResult(t, c, id, false, `{"error": {"name": "Canceled", "message": "Job canceled: stop it by admin", "reason": "stop it", "canceler": "admin"}}`)
		// queue jobs.rs cancel_job: the flow's running children are
		// canceled too, by the same user, with the same reason.
		s := c.WaitFlowState(step, time.Minute, "ended", func(j corpusJob) bool { return j.Type == "CompletedJob" })
		if !s.Canceled || s.CanceledBy != "admin" || s.CanceledReason != "stop it" || s.Success {
			t.Errorf("step after the cancel: canceled %v by %q (%q), success %v", s.Canceled, s.CanceledBy, s.CanceledReason, s.Success)
		}
		noJobFor(t, c, id, "b@0")
	})
}

func routeCases(t *testing.T, admin *Client) {
	admin = admin.For(t)
	c := admin.For(t)
	t.Run("get_root_job_id and result_by_id", func(t *testing.T) {
		c := c.For(t)
		c.MustSaveFlow("f/corpus/outer", flowValue(nil, flowStep("a", "f/corpus/inner", in{"x": static("x")}), identity("b")))
		id := c.MustRunFlow("f/corpus/outer", M{})
		wantResult(t, c, id, true, `"inner x"`)
		inner := c.MustStepJobs(id)[0]
		innerStep := c.MustStepJobs(inner.ID)[0]
		// jobs.rs get_root_job: the flow at the top of a job's tree (the
		// job itself for a flow that no flow runs).
		for _, j := range []string{innerStep.ID, inner.ID, id} {
			if r := c.MustDo("GET", "/api/w/main/jobs_u/get_root_job_id/"+j, nil, 200); r.Body != `"`+id+`"` {
				t.Errorf("root of %s = %s, want %q", j, r.Body, id)
			}
		}
		// jobs.rs get_result_by_id: the result of a node of the flow.
		if r := c.MustDo("GET", "/api/w/main/jobs/result_by_id/"+id+"/a", nil, 200); r.Body != `"inner x"` {
			t.Errorf("result_by_id a = %s", r.Body)
		}
		c.MustDo("GET", "/api/w/main/jobs/result_by_id/"+id+"/nope", nil, 404)
	})
	t.Run("user_states", func(t *testing.T) {
		c := c.For(t)
		id := c.MustPreviewFlow(approvalFlow(1, nil, nil), M{})
		c.WaitSuspended(id)
		// jobs.rs get_flow_user_state / set_flow_user_state; Windmill docs
		// flows/architecture "Custom flow states": a value kept in the
		// flow's status under user_states, null when unset.
		states := "/api/w/main/jobs/flow/user_states/" + id + "/"
		if r := c.MustDo("GET", states+"k", nil, 200); r.Body != "null" {
			t.Errorf("unset state = %s, want null", r.Body)
		}
		c.MustDo("POST", states+"k", M{"n": 1}, 200)
		if r := c.MustDo("GET", states+"k", nil, 200); !jsonEqual([]byte(r.Body), []byte(`{"n": 1}`)) {
			t.Errorf("state k = %s", r.Body)
		}
		if fs := c.MustGetJob(id).FlowStatus; !jsonEqual(fs.UserStates["k"], []byte(`{"n": 1}`)) {
			t.Errorf("flow_status.user_states = %v", fs.UserStates)
		}
		c.MustDo("POST", "/api/w/main/jobs/flow/resume/"+id, M{}, 201)
		c.WaitJob(id, time.Minute)
	})
}
