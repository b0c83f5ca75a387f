package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"

	"vane"
	"vane/raftstore"
)

// IdempotentJobs is the store with an idempotent PushJob, for the API.
//
// A client that submits with its own job_id and gets an indeterminate answer
// (503: the leader died or the connection broke after the request was
// forwarded) retries with the same job_id and the same args. If the first
// attempt landed, the store refuses the retry with ErrAlreadyExists; this
// wrapper then compares the existing job with the retried one and, when they
// are the same submission (same workspace, kind, script path and hash, raw
// code, args and submitting user), answers success: the client gets its 201
// with the job id, and there is still exactly one job. A different job under
// an existing id is still refused (Windmill's 400 "already exists").
type IdempotentJobs struct {
	*raftstore.Store
}

// PushJob pushes j; a push of an identical job whose id exists succeeds
// without creating anything (see IdempotentJobs).
func (s IdempotentJobs) PushJob(ctx context.Context, a vane.Actor, j vane.Job) error {
	err := s.Store.PushJob(ctx, a, j)
	if err == nil || !errors.Is(err, vane.ErrAlreadyExists) {
		return err
	}
	existing, gerr := s.Store.GetJob(j.Workspace, j.ID)
	if gerr != nil || !sameSubmission(&existing, &j) {
		return err
	}
	return nil
}

// sameSubmission reports whether a and b are the same job submitted twice.
func sameSubmission(a, b *vane.Job) bool {
	return a.Workspace == b.Workspace && a.Kind == b.Kind && a.ScriptPath == b.ScriptPath &&
		a.ScriptHash == b.ScriptHash && a.RawCode == b.RawCode && a.Email == b.Email &&
		a.ParentJob == b.ParentJob && sameJSON(a.Args, b.Args)
}

// sameJSON compares two JSON values by meaning (key order and spacing aside).
func sameJSON(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}
