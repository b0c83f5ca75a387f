package raftstore

import (
	"fmt"
	"time"

	"github.com/bytedance/sonic"

	"vane"
)

// codec encodes commands and stored values. ConfigStd sorts map keys, so the
// same value gives the same bytes on every node (the FSM hash test relies on
// it), and copies strings out of the input, which matters because bbolt values
// are only valid inside their transaction.
//
// Raw JSON fields (args, results, schemas) are validated once, by the
// command's validate, and then copied verbatim: re-validating and compacting
// them on every encode was a fifth of the CPU of a job push.
var codec = sonic.Config{
	SortMapKeys:             true,
	CopyString:              true,
	ValidateString:          true,
	NoValidateJSONMarshaler: true,
}.Froze()

func marshal(v any) []byte {
	b, err := codec.Marshal(v)
	if err != nil {
		// Only unsupported types (channels, funcs) fail; stored types have none.
		panic(fmt.Sprintf("raftstore: cannot encode %T: %v", v, err))
	}
	return b
}

// unmarshal decodes a stored value. It copies b first: bbolt's bytes are only
// valid until the transaction ends and decoded raw JSON fields may alias them.
func unmarshal(b []byte, v any) error {
	if err := codec.Unmarshal(append([]byte(nil), b...), v); err != nil {
		return fmt.Errorf("cannot decode stored %T: %w", v, err)
	}
	return nil
}

// The record types below store the fields that vane's types hide from JSON
// (json:"-") so that clients never see them: the queue sequence and lease of a
// job, a script's deployment state, a password hash, a token hash.

type jobRecord struct {
	vane.Job
	XSeq    uint64         `json:"x_seq"`
	XStatus vane.JobStatus `json:"x_status"`
	XEpoch  uint64         `json:"x_epoch"`
	XLease  time.Time      `json:"x_lease_expires"`
	XFlowV  uint64         `json:"x_flow_version,omitempty"`
}

func jobToRecord(j vane.Job) jobRecord {
	return jobRecord{Job: j, XSeq: j.Seq, XStatus: j.Status, XEpoch: j.LeaseEpoch, XLease: j.LeaseExpires, XFlowV: j.FlowStatusVersion}
}

func (r jobRecord) job() vane.Job {
	j := r.Job
	j.Seq, j.Status, j.LeaseEpoch, j.LeaseExpires, j.FlowStatusVersion = r.XSeq, r.XStatus, r.XEpoch, r.XLease, r.XFlowV
	return j
}

type scriptRecord struct {
	vane.Script
	XDeploy vane.DeployState `json:"x_deploy"`
}

func scriptToRecord(s vane.Script) scriptRecord {
	return scriptRecord{Script: s, XDeploy: s.DeploymentStatus}
}

func (r scriptRecord) script() vane.Script {
	s := r.Script
	s.DeploymentStatus = r.XDeploy
	return s
}

type userRecord struct {
	vane.User
	XPassword string `json:"x_password_hash"`
}

func (r userRecord) user() vane.User {
	u := r.User
	u.PasswordHash = r.XPassword
	return u
}

type tokenRecord struct {
	vane.Token
	XHash string `json:"x_token_hash"`
}

func (r tokenRecord) token() vane.Token {
	t := r.Token
	t.TokenHash = r.XHash
	return t
}

// workspaceRecord is a workspace, its data key wrapped with the master key
// and how far its values are sealed (sealPhase, sealed.go).
type workspaceRecord struct {
	vane.Workspace
	XWrappedKey []byte    `json:"x_wrapped_key"`
	XSealPhase  sealPhase `json:"x_seal_phase,omitempty"`
}

// variableRecord holds a variable. In record format 1 (XSeal) Value is empty
// and XCipher holds its value sealed under the workspace, the kind and the
// path; format 0 records are older (see sealed.go).
type variableRecord struct {
	vane.Variable
	XCipher []byte     `json:"x_cipher,omitempty"`
	XSeal   sealFormat `json:"x_seal,omitempty"`
}

// resourceRecord holds a resource, like variableRecord: in format 1 Value is
// null and XCipher holds it sealed; a format 0 record is a plain
// vane.Resource.
type resourceRecord struct {
	vane.Resource
	XCipher []byte     `json:"x_cipher,omitempty"`
	XSeal   sealFormat `json:"x_seal,omitempty"`
}

// queueEntry is the value of a queue index key: enough to filter a claim
// without loading the job.
type queueEntry struct {
	ID       string          `json:"id"`
	Tag      string          `json:"tag,omitempty"`
	Language vane.ScriptLang `json:"lang,omitempty"`
}
