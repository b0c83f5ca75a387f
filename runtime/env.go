package runtime

import (
	"strconv"
	"strings"
	"time"

	"vane"
)

// EnvInput is what a job's WM_* environment is computed from, besides the job.
type EnvInput struct {
	Token           string // WM_TOKEN: vane.MintJobToken of the job's lease
	BaseURL         string // WM_BASE_URL: the instance's public URL
	BaseInternalURL string // BASE_INTERNAL_URL: how the worker's host reaches the API
	WorkerGroup     string // WM_WORKER_GROUP
	FlowPath        string // WM_FLOW_PATH: the parent flow's path, if known
}

// JobEnv returns every reserved variable of spec section 5 for job j, plus
// BASE_INTERNAL_URL. Executors add PATH, HOME and TZ; a jailed executor
// rewrites BASE_INTERNAL_URL to the jail's forwarder.
func JobEnv(j *vane.Job, in EnvInput) map[string]string {
	username := j.CreatedBy
	if username == "" {
		username, _, _ = strings.Cut(j.Email, "@")
	}
	scheduledFor := ""
	if j.SchedulePath != "" && !j.ScheduledFor.IsZero() {
		scheduledFor = j.ScheduledFor.UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	root := j.RootJob
	if root == "" {
		root = j.ParentJob
	}
	stateP := statePath(j, in.FlowPath, username)
	return map[string]string{
		"WM_WORKSPACE":        j.Workspace,
		"WM_TOKEN":            in.Token,
		"WM_EMAIL":            j.Email,
		"WM_USERNAME":         username,
		"WM_BASE_URL":         in.BaseURL,
		"WM_JOB_ID":           j.ID,
		"WM_SCHEDULED_FOR":    scheduledFor,
		"WM_JOB_PATH":         j.ScriptPath,
		"WM_FLOW_JOB_ID":      j.ParentJob,
		"WM_ROOT_FLOW_JOB_ID": root,
		"WM_FLOW_PATH":        in.FlowPath,
		"WM_SCHEDULE_PATH":    j.SchedulePath,
		"WM_PERMISSIONED_AS":  j.PermissionedAs,
		"WM_STATE_PATH":       stateP,
		"WM_STATE_PATH_NEW":   stateP,
		"WM_FLOW_STEP_ID":     j.FlowStepID,
		"WM_OBJECT_PATH":      objectPath(j, in.FlowPath),
		"WM_WORKER_GROUP":     in.WorkerGroup,
		"BASE_INTERNAL_URL":   in.BaseInternalURL,
	}
}

// statePath is WM_STATE_PATH: {flow_path}/{step or nostep}_{trigger} in a
// flow, {script_path}/{trigger} otherwise, u/{username}/tmp_state without a
// path; trigger is the username for scheduled jobs, else "user".
func statePath(j *vane.Job, flowPath, username string) string {
	trigger := "user"
	if j.SchedulePath != "" {
		trigger = username
	}
	if flowPath != "" {
		step := j.FlowStepID
		if step == "" {
			step = "nostep"
		}
		return flowPath + "/" + step + "_" + trigger
	}
	if j.ScriptPath != "" {
		return j.ScriptPath + "/" + trigger
	}
	return "u/" + username + "/tmp_state"
}

// objectPath is WM_OBJECT_PATH: {flow_path_}/{schedule_}/{step}/{ts_ms}_{job_id}
// in a flow, {script_path_}/{schedule_}/{ts_ms}_{job_id} otherwise; slashes
// become underscores and the schedule part is "manual" without a schedule.
func objectPath(j *vane.Job, flowPath string) string {
	flat := func(s string) string { return strings.ReplaceAll(s, "/", "_") }
	schedule := "manual"
	if j.SchedulePath != "" {
		schedule = flat(j.SchedulePath)
	}
	ts := strconv.FormatInt(j.CreatedAt.UnixMilli(), 10)
	if flowPath != "" {
		step := j.FlowStepID
		if step == "" {
			step = "nostep"
		}
		return flat(flowPath) + "/" + schedule + "/" + step + "/" + ts + "_" + j.ID
	}
	return flat(j.ScriptPath) + "/" + schedule + "/" + ts + "_" + j.ID
}
