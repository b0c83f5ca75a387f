package flows

import (
	"encoding/json"
	"time"
)

// Event is something that happened to a flow run, fed to Advance by the
// driver. Every event carries the time it is applied at (At): the engine reads
// no clock.
type Event interface{ at() time.Time }

// StepDone reports the one recorded completion of the step job of Key.
// Result is the job's result; for a failure, Windmill's error object
// {"error": {"name", "message", "stack"}}. A StepDone for a key already applied
// is ignored; one for a key the flow never started, or no longer waits for, is
// refused with ErrStaleEvent.
type StepDone struct {
	Key     StepKey
	Success bool
	Result  json.RawMessage
	At      time.Time
}

// Resumed is a resume (approval) of the flow suspended after the step of Key:
// Key is the step whose job the resume URL was made for. ResumeID is the id in
// that URL; a second event with the same ResumeID is ignored. Approver is the
// user or "" (anonymous, as Windmill records it). Payload is the resume body
// (null when none). The driver checks the approver against
// Suspend.Conditions before sending it.
type Resumed struct {
	Key      StepKey
	ResumeID uint32
	Approver string
	Payload  json.RawMessage
	At       time.Time
}

// ResumeCanceled is a cancel (disapproval) through the cancel URL of the step
// of Key.
type ResumeCanceled struct {
	Key      StepKey
	ResumeID uint32
	Approver string
	At       time.Time
}

// TimerFired reports that the timer of a SetTimer action with this Key is due.
// At must not be before the timer's At.
type TimerFired struct {
	Key StepKey
	At  time.Time
}

// Canceled cancels the whole flow run; running steps get CancelStep actions.
type Canceled struct {
	Reason string
	By     string
	At     time.Time
}

// UserState sets one of the flow's user_states (jobs/flow/user_states), which
// Windmill keeps in the flow status. A null Value deletes the key.
type UserState struct {
	Key   string
	Value json.RawMessage
	At    time.Time
}

func (e StepDone) at() time.Time       { return e.At }
func (e Resumed) at() time.Time        { return e.At }
func (e ResumeCanceled) at() time.Time { return e.At }
func (e TimerFired) at() time.Time     { return e.At }
func (e Canceled) at() time.Time       { return e.At }
func (e UserState) at() time.Time      { return e.At }
