package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"vane"
)

// A schedule's handlers (Windmill's on_failure, on_recovery, on_success)
// run after the end of one of its jobs, from the leader, which reads the
// schedule's recent jobs to count the failures or successes in a row. Each
// handler job's id is derived from the job that set it off and the handler,
// so a new leader, or the same event seen twice, queues it once.
//
// The arguments are Windmill's:
//   - on_failure: workspace_id, job_id, path, is_flow, schedule_path, error,
//     started_at, failed_times (its schedule error handler template, the
//     Slack one, takes exactly these);
//   - on_recovery: the failed job's result object (its "error"), then
//     error_started_at, schedule_path, path, is_flow, success_result,
//     success_times, success_started_at (windmill-queue's
//     handle_recovered_schedule);
//   - on_success: path, is_flow, schedule_path, success_result,
//     success_started_at;
//
// each with the handler's extra args on top.

// handle runs the handlers of the schedule that queued job ws/id, which just
// ended.
func (s *Scheduler) handle(ctx context.Context, ws, id string) {
	j, err := s.store.GetJob(ws, id)
	if err != nil || !j.Finished() || j.SchedulePath == "" || j.ParentJob != "" {
		return
	}
	sc, err := s.scheduleOf(ws, j.SchedulePath)
	if err != nil || sc == nil || (sc.OnFailure == "" && sc.OnRecovery == "" && sc.OnSuccess == "") {
		return
	}
	// The schedule's jobs, newest first (its handlers have no schedule
	// path, so they are not among them).
	need := max(sc.OnFailureTimes, sc.OnRecoveryTimes, 1) + 2
	recent, err := s.store.ListJobs(ws, vane.JobFilter{SchedulePath: sc.Path, Status: []vane.JobStatus{vane.JobCompleted},
		OrderDesc: true, PerPage: min(need, 1000)})
	if err != nil {
		s.log.Warn("scheduler: cannot read a schedule's jobs for its handlers", "schedule", sc.Path, "err", err)
		return
	}
	var hist []vane.Job
	for _, r := range recent {
		if r.ParentJob == "" {
			hist = append(hist, r)
		}
	}
	if len(hist) == 0 || hist[0].ID != j.ID {
		return // a later job ended already; it decides
	}
	streak := 1
	for streak < len(hist) && hist[streak].Success == j.Success {
		streak++
	}
	base := map[string]any{"path": sc.ScriptPath, "is_flow": sc.IsFlow, "schedule_path": sc.Path}
	switch {
	case !j.Success && sc.OnFailure != "":
		times := max(sc.OnFailureTimes, 1)
		if streak == times || (!sc.OnFailureExact && streak > times) {
			args := map[string]any{"workspace_id": ws, "job_id": j.ID, "error": errorOf(j.Result),
				"started_at": startedAt(&j), "failed_times": streak}
			s.pushHandler(ctx, sc, &j, "on_failure", sc.OnFailure, merge(base, args), sc.OnFailureExtraArgs)
		}
	case j.Success:
		if sc.OnSuccess != "" {
			args := map[string]any{"success_result": json.RawMessage(j.Result), "success_started_at": startedAt(&j)}
			s.pushHandler(ctx, sc, &j, "on_success", sc.OnSuccess, merge(base, args), sc.OnSuccessExtraArgs)
		}
		if sc.OnRecovery != "" && streak == max(sc.OnRecoveryTimes, 1) && streak < len(hist) {
			failed := hist[streak] // the failure the successes recovered from
			args := map[string]any{}
			var obj map[string]json.RawMessage
			if json.Unmarshal(failed.Result, &obj) == nil {
				for k, v := range obj {
					args[k] = v
				}
			}
			for k, v := range map[string]any{"error_started_at": startedAt(&failed), "success_result": json.RawMessage(j.Result),
				"success_times": streak, "success_started_at": startedAt(&j)} {
				args[k] = v
			}
			s.pushHandler(ctx, sc, &j, "on_recovery", sc.OnRecovery, merge(args, base), sc.OnRecoveryExtraArgs)
		}
	}
}

// scheduleOf reads a schedule among the enabled ones.
func (s *Scheduler) scheduleOf(ws, path string) (*vane.Schedule, error) {
	cur, err := s.current()
	if err != nil {
		return nil, err
	}
	return cur[key{ws, path}], nil
}

// pushHandler queues handler ("script/<path>" or "flow/<path>") with args
// (plus extra), run as the schedule's owner, under an id derived from the
// job that set it off and which handler it is.
func (s *Scheduler) pushHandler(ctx context.Context, sc *vane.Schedule, after *vane.Job, which, handler string, args map[string]any, extra json.RawMessage) {
	if err := s.queueHandler(ctx, sc, after, which, handler, args, extra); err != nil {
		s.log.Warn("scheduler: cannot queue a schedule's handler", "schedule", sc.Path, "handler", which, "err", err)
	}
}

func (s *Scheduler) queueHandler(ctx context.Context, sc *vane.Schedule, after *vane.Job, which, handler string, args map[string]any, extra json.RawMessage) error {
	var more map[string]any
	if len(extra) > 0 && json.Unmarshal(extra, &more) == nil {
		args = merge(args, more)
	}
	body, err := json.Marshal(args)
	if err != nil {
		return err
	}
	access, err := vane.ResolveAccess(s.store, sc.Email, sc.Workspace)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	j := vane.Job{ID: uuid.NewSHA1(uuid.NameSpaceOID, []byte(after.Workspace+"\x00"+after.ID+"\x00"+which)).String(),
		Workspace: sc.Workspace, Args: body, CreatedBy: access.Username, Email: sc.Email, PermissionedAs: "u/" + access.Username,
		CreatedAt: now, ScheduledFor: now, VisibleToOwner: true}
	kind, path, _ := strings.Cut(handler, "/")
	switch kind {
	case "flow":
		f, err := s.store.GetFlow(sc.Workspace, path)
		if err != nil || f.Archived || !access.CanRead(f.Path, f.ExtraPerms) {
			return fmt.Errorf("cannot find flow %s readable by u/%s: %w", path, access.Username, vane.ErrNotFound)
		}
		j.Kind, j.ScriptPath, j.RawFlow, j.Tag = vane.JobFlow, f.Path, f.Value, "flow"
	case "script":
		sc2, err := s.store.GetScriptByPath(sc.Workspace, path)
		if err != nil || sc2.Deleted || !access.CanRead(sc2.Path, sc2.ExtraPerms) {
			return fmt.Errorf("cannot find script %s readable by u/%s: %w", path, access.Username, vane.ErrNotFound)
		}
		j.Kind, j.ScriptPath, j.ScriptHash, j.Language, j.Tag = vane.JobScript, sc2.Path, sc2.Hash, sc2.Language, sc2.Tag
		if j.Tag == "" {
			j.Tag = string(sc2.Language)
		}
	default:
		return vane.Invalidf("handler %q is not script/<path> or flow/<path>", handler)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.store.PushJob(pctx, vane.Actor{Email: j.Email, Username: j.CreatedBy}, j); err != nil && !errors.Is(err, vane.ErrAlreadyExists) {
		return err
	}
	return nil
}

// errorOf is a failed job's error: its result's "error", or the result.
func errorOf(result json.RawMessage) json.RawMessage {
	var obj map[string]json.RawMessage
	if json.Unmarshal(result, &obj) == nil {
		if e, ok := obj["error"]; ok {
			return e
		}
	}
	return result
}

// startedAt is when j started, as Windmill writes datetimes.
func startedAt(j *vane.Job) string {
	if j.StartedAt == nil {
		return ""
	}
	return j.StartedAt.UTC().Format(time.RFC3339Nano)
}

// merge returns a's entries overwritten by b's.
func merge(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
