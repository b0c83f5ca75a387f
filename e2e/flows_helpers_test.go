package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// This file builds OpenFlow values for the flow corpus and drives flows
// over HTTP: save, run, wait, read their status and their step jobs.

// M is a JSON object. js (flow_clients_test.go) makes a javascript
// InputTransform, resumeURLs is jobs/resume_urls' answer.
type M = map[string]any

// static is a static InputTransform.
func static(v any) M { return M{"type": "static", "value": v} }

// in maps parameter names to transforms: a string is a javascript
// expression, anything else a transform already built.
type in map[string]any

func (t in) transforms() M {
	out := M{}
	for k, v := range t {
		if s, ok := v.(string); ok {
			out[k] = js(s)
		} else {
			out[k] = v
		}
	}
	return out
}

// rawModule is a rawscript module in lang. A Bash step's parameters are its
// `name="$1"` lines in order; its result is ./result.json if it writes one,
// else its last line of output.
func rawModule(id, lang, content string, t in) M {
	return M{"id": id, "value": M{"type": "rawscript", "language": lang, "content": content, "input_transforms": t.transforms()}}
}

// bash is a Bash rawscript module.
func bash(id, content string, t in) M { return rawModule(id, "bash", content, t) }

// scriptStep runs the saved script at path (its version hash, when set).
func scriptStep(id, path, hash string, t in) M {
	v := M{"type": "script", "path": path, "input_transforms": t.transforms()}
	if hash != "" {
		v["hash"] = hash
	}
	return M{"id": id, "value": v}
}

// flowStep runs the saved flow at path.
func flowStep(id, path string, t in) M {
	return M{"id": id, "value": M{"type": "flow", "path": path, "input_transforms": t.transforms()}}
}

// identity is an identity module.
func identity(id string) M { return M{"id": id, "value": M{"type": "identity"}} }

// forLoop is a forloopflow over iterator (a javascript expression).
func forLoop(id, iterator string, skipFailures bool, body ...M) M {
	return M{"id": id, "value": M{"type": "forloopflow", "iterator": js(iterator), "skip_failures": skipFailures, "modules": body}}
}

// whileLoop is a whileloopflow.
func whileLoop(id string, body ...M) M {
	return M{"id": id, "value": M{"type": "whileloopflow", "skip_failures": false, "modules": body}}
}

// with returns a copy of module m with the top-level fields of opts set
// (stop_after_if, suspend, retry, ...); keys starting with "value." set
// fields of its value.
func with(m M, opts M) M {
	out := M{}
	for k, v := range m {
		out[k] = v
	}
	val := M{}
	for k, v := range m["value"].(M) {
		val[k] = v
	}
	for k, v := range opts {
		if f, ok := strings.CutPrefix(k, "value."); ok {
			val[f] = v
		} else {
			out[k] = v
		}
	}
	out["value"] = val
	return out
}

// flowValue is an OpenFlow value with modules and extra FlowValue fields.
func flowValue(extra M, modules ...M) M {
	if modules == nil {
		modules = []M{}
	}
	v := M{"modules": modules}
	for k, x := range extra {
		v[k] = x
	}
	return v
}

// apiCall is the Bash function a step uses to call vane's API with its own
// token (WM_TOKEN), through BASE_INTERNAL_URL (a jailed step reaches the API
// only there): `api METHOD route [curl args]`, route below /api/w/<ws>/.
const apiCall = `api() { m="$1"; r="$2"; shift 2; curl -sS -X "$m" -H "Authorization: Bearer $WM_TOKEN" -H 'Content-Type: application/json' "$BASE_INTERNAL_URL/api/w/$WM_WORKSPACE/$r" "$@"; }
`

// For returns a copy of c that reports to tb (a subtest).
func (c *Client) For(tb testing.TB) *Client {
	cp := *c
	cp.tb = tb
	return &cp
}

// asyncResponse is DoAsync's answer: err when the request failed.
type asyncResponse struct {
	Response
	err error
}

// DoAsync sends a JSON request from another goroutine and delivers the
// answer on the channel (it never fails the test itself).
func (c *Client) DoAsync(method, path string, body any) <-chan asyncResponse {
	out := make(chan asyncResponse, 1)
	enc, err := json.Marshal(body)
	if err != nil {
		out <- asyncResponse{err: err}
		return out
	}
	go func() {
		req, err := http.NewRequest(method, c.base+path, bytes.NewReader(enc))
		if err != nil {
			out <- asyncResponse{err: err}
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := c.http.Do(req)
		if err != nil {
			out <- asyncResponse{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		out <- asyncResponse{Response: Response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}, err: err}
	}()
	return out
}

// MustSaveFlow saves (creates, or updates when it exists) the flow at path
// and fails the test unless it is accepted.
func (c *Client) MustSaveFlow(path string, value M) {
	c.tb.Helper()
	body := M{"path": path, "summary": "corpus " + path, "value": value}
	if c.Do("GET", "/api/w/main/flows/exists/"+path, nil).Body == "true" {
		c.MustDo("POST", "/api/w/main/flows/update/"+path, body, 200)
		return
	}
	c.MustDo("POST", "/api/w/main/flows/create", body, 201)
}

// MustRunFlow runs the saved flow at path with args and returns the flow
// job's id (201 and the uuid, as jobs/run/f answers).
func (c *Client) MustRunFlow(path string, args any) string {
	c.tb.Helper()
	id := c.MustDo("POST", "/api/w/main/jobs/run/f/"+path, args, 201).Body
	if len(id) != 36 {
		c.tb.Fatalf("jobs/run/f/%s answered %q, not a job id", path, id)
	}
	return id
}

// MustPreviewFlow runs an unsaved flow value with args and returns its id.
func (c *Client) MustPreviewFlow(value M, args any) string {
	c.tb.Helper()
	return c.MustDo("POST", "/api/w/main/jobs/run/preview_flow", M{"value": value, "args": args}, 201).Body
}

// corpusJob is what the flow corpus reads of a job from jobs_u/get.
type corpusJob struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	JobKind        string          `json:"job_kind"`
	ParentJob      string          `json:"parent_job"`
	RootJob        string          `json:"root_job"`
	FlowStepID     string          `json:"flow_step_id"`
	FlowStepKey    string          `json:"flow_step_key"`
	ScriptPath     string          `json:"script_path"`
	Running        bool            `json:"running"`
	Success        bool            `json:"success"`
	Canceled       bool            `json:"canceled"`
	CanceledBy     string          `json:"canceled_by"`
	CanceledReason string          `json:"canceled_reason"`
	IsSkipped      bool            `json:"is_skipped"`
	Result         json.RawMessage `json:"result"`
	Args           json.RawMessage `json:"args"`
	Logs           string          `json:"logs"`
	CreatedAt      time.Time       `json:"created_at"`
	ScheduledFor   time.Time       `json:"scheduled_for"`
	StartedAt      *time.Time      `json:"started_at"`
	CompletedAt    *time.Time      `json:"completed_at"`
	FlowStatus     *flowStatus     `json:"flow_status"`
}

// flowStatus is the part of Windmill's FlowStatus the corpus reads.
type flowStatus struct {
	Step          int                        `json:"step"`
	Modules       []flowStatusModule         `json:"modules"`
	FailureModule *flowStatusModule          `json:"failure_module"`
	UserStates    map[string]json.RawMessage `json:"user_states"`
	// ApprovalConditions are the current suspend's (flow_status.rs
	// FlowStatus.approval_conditions).
	ApprovalConditions json.RawMessage `json:"approval_conditions"`
	Retry              *struct {
		FailCount  int      `json:"fail_count"`
		FailedJobs []string `json:"failed_jobs"`
	} `json:"retry"`
}

// flowStatusModule is one FlowStatusModule.
type flowStatusModule struct {
	Type            string          `json:"type"`
	ID              string          `json:"id"`
	Job             string          `json:"job"`
	Count           *int            `json:"count"`
	Skipped         bool            `json:"skipped"`
	FlowJobs        []string        `json:"flow_jobs"`
	FlowJobsSuccess []*bool         `json:"flow_jobs_success"`
	FailedRetries   []string        `json:"failed_retries"`
	ParentModule    string          `json:"parent_module"`
	Parallel        bool            `json:"parallel"`
	BranchChosen    json.RawMessage `json:"branch_chosen"`
}

// MustGetJob reads job id with jobs_u/get.
func (c *Client) MustGetJob(id string) corpusJob {
	c.tb.Helper()
	var j corpusJob
	c.MustDo("GET", "/api/w/main/jobs_u/get/"+id, nil, 200).JSON(c.tb, &j)
	return j
}

// MustStepJobs lists the jobs whose parent is flow job id
// (jobs/list?parent_job=), oldest first, with their logs.
func (c *Client) MustStepJobs(id string) []corpusJob {
	c.tb.Helper()
	var list []corpusJob
	c.MustDo("GET", "/api/w/main/jobs/list?per_page=1000&parent_job="+id, nil, 200).JSON(c.tb, &list)
	sort.SliceStable(list, func(a, b int) bool { return list[a].CreatedAt.Before(list[b].CreatedAt) })
	return list
}

// stepKeys are the flow_step_key of jobs, sorted.
func stepKeys(jobs []corpusJob) []string {
	keys := []string{}
	for _, j := range jobs {
		keys = append(keys, j.FlowStepKey)
	}
	sort.Strings(keys)
	return keys
}

// WaitFlowState polls jobs_u/get of flow job id until ok says so, failing
// the test past within.
func (c *Client) WaitFlowState(id string, within time.Duration, what string, ok func(j corpusJob) bool) corpusJob {
	c.tb.Helper()
	deadline := time.Now().Add(within)
	for {
		j := c.MustGetJob(id)
		if ok(j) {
			return j
		}
		if time.Now().After(deadline) {
			st, _ := json.Marshal(j.FlowStatus)
			c.tb.Fatalf("flow %s: not %s within %s; flow_status %s", id, what, within, st)
		}
		time.Sleep(20 * time.Millisecond) // polling the flow's status with a deadline
	}
}

// WaitSuspended waits until flow job id waits for resumes
// (WaitingForEvents) and returns the suspending step's job id.
func (c *Client) WaitSuspended(id string) string {
	c.tb.Helper()
	var step string
	c.WaitFlowState(id, time.Minute, "suspended", func(j corpusJob) bool {
		if j.FlowStatus == nil {
			return false
		}
		for i, m := range j.FlowStatus.Modules {
			if m.Type == "WaitingForEvents" && i > 0 {
				step = j.FlowStatus.Modules[i-1].Job
				return true
			}
		}
		return false
	})
	return step
}

// MustResumeURLs asks for the signed URLs of resume id of step job step,
// for approver ("" for anyone).
func (c *Client) MustResumeURLs(step string, resumeID int, approver string) resumeURLs {
	c.tb.Helper()
	q := ""
	if approver != "" {
		q = "?approver=" + url.QueryEscape(approver)
	}
	var u resumeURLs
	c.MustDo("GET", fmt.Sprintf("/api/w/main/jobs/resume_urls/%s/%d%s", step, resumeID, q), nil, 200).JSON(c.tb, &u)
	return u
}

// DoURL sends a request to an absolute URL of the server (a signed resume
// URL), with c's token unless it has none.
func (c *Client) DoURL(method, abs string, body any) Response {
	c.tb.Helper()
	rest, ok := strings.CutPrefix(abs, c.base)
	if !ok {
		c.tb.Fatalf("URL %s is not on the server %s", abs, c.base)
	}
	return c.Do(method, rest, body)
}

// jsonEqual reports whether a and b are the same JSON value.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// compact is b as compact JSON (b itself when it is not JSON), for messages.
func compact(b []byte) string {
	var out bytes.Buffer
	if json.Compact(&out, b) != nil {
		return string(b)
	}
	return out.String()
}
