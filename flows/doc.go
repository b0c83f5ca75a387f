// Package flows is vane's OpenFlow engine: a pure, deterministic state
// machine for Windmill flows.
//
//	f, err := flows.Parse(value)                     // once per flow version
//	st, actions, err := flows.Start(f, args, now, env)
//	st, actions, err = flows.Advance(f, st, event, env) // per event
//
// The engine does no I/O, keeps no goroutines and reads no clock: the time of
// a transition comes in its event, the workspace's variables and resources
// through Env. A *Status is a value the driver stores as opaque bytes
// (json.Marshal, DecodeStatus); Start and Advance never modify the status they
// are given. The driver applies the returned actions (push a step job, set a
// timer, complete the flow) in the same replicated write as the new status,
// with a compare-and-set on Status.Version, and feeds back what happens as
// events: StepDone, Resumed, ResumeCanceled, TimerFired, Canceled, UserState.
//
// Step jobs are named by a StepKey (module, enclosing iterations and branches,
// attempt) from which the driver derives job ids, so a repeated transition
// never pushes a step twice; a StepDone already applied is a no-op, and an
// event the run does not wait for is refused with ErrStaleEvent.
//
// Expressions (input transforms, stop_after_if, skip_if, branch predicates,
// iterators, sleep, timeout, retry_if, user_groups_required) run in goja, each
// in a fresh runtime with the limits of Limits. See DESIGN.md for the
// contract, the Windmill behaviour each rule follows, and what is left out.
package flows
