package flows

import (
	"strconv"
	"strings"

	"vane"
)

// Frame is one enclosing loop or branch on the way from the top of a flow to a
// step: the container module, which attempt of it (it may be retried as a
// whole), and which iteration or branch.
//
// Index is the iteration number for loops, the branch position for branchall,
// and for branchone 0 for the default branch and i+1 for branch i (as Windmill
// numbers its branchone-N paths, backend/windmill-worker/src/worker_flow.rs).
type Frame struct {
	Module  string `json:"module"`
	Attempt int    `json:"attempt"`
	Index   int    `json:"index"`
}

// StepKey names one execution of one module: which module (Step), inside which
// iterations and branches (Path, outermost first) and which retry (Attempt, 0
// for the first run). It is deterministic: the same flow, args and events give
// the same keys, so the driver derives step job ids from (flow job, key) and a
// retried transition never pushes a step twice.
//
// A key whose Step is empty names a loop iteration or branch body itself (its
// Path ends with that iteration's frame); FlowStatus uses such keys for
// Windmill's flow_jobs ids.
type StepKey struct {
	Path    []Frame `json:"path,omitempty"`
	Step    string  `json:"step"`
	Attempt int     `json:"attempt"`
}

// String is the canonical text of the key, e.g. "a@0" for the first run of a
// top-level module a, or "loop@0#3/c@1" for the second attempt of c in the
// fourth iteration of loop. Module ids cannot contain '@', '#' or '/', so the
// text is unambiguous; ParseStepKey reverses it.
func (k StepKey) String() string {
	var b strings.Builder
	for _, f := range k.Path {
		b.WriteString(f.Module)
		b.WriteByte('@')
		b.WriteString(strconv.Itoa(f.Attempt))
		b.WriteByte('#')
		b.WriteString(strconv.Itoa(f.Index))
		b.WriteByte('/')
	}
	b.WriteString(k.Step)
	if k.Step != "" {
		b.WriteByte('@')
		b.WriteString(strconv.Itoa(k.Attempt))
	}
	return b.String()
}

// Equal reports whether two keys name the same execution.
func (k StepKey) Equal(o StepKey) bool {
	if k.Step != o.Step || k.Attempt != o.Attempt || len(k.Path) != len(o.Path) {
		return false
	}
	for i := range k.Path {
		if k.Path[i] != o.Path[i] {
			return false
		}
	}
	return true
}

// ParseStepKey parses the text String produces, wrapping vane.ErrInvalid when
// it is malformed.
func ParseStepKey(s string) (StepKey, error) {
	var k StepKey
	parts := strings.Split(s, "/")
	last := parts[len(parts)-1]
	for _, p := range parts[:len(parts)-1] {
		mod, rest, ok := strings.Cut(p, "@")
		if !ok || mod == "" {
			return StepKey{}, vane.Invalidf("step key %q: frame %q has no module@attempt", s, p)
		}
		att, idx, ok := strings.Cut(rest, "#")
		if !ok {
			return StepKey{}, vane.Invalidf("step key %q: frame %q has no #index", s, p)
		}
		a, err1 := strconv.Atoi(att)
		i, err2 := strconv.Atoi(idx)
		if err1 != nil || err2 != nil || a < 0 || i < 0 {
			return StepKey{}, vane.Invalidf("step key %q: frame %q has a bad number", s, p)
		}
		k.Path = append(k.Path, Frame{Module: mod, Attempt: a, Index: i})
	}
	if last == "" {
		if len(k.Path) == 0 {
			return StepKey{}, vane.Invalidf("step key %q is empty", s)
		}
		return k, nil
	}
	mod, att, ok := strings.Cut(last, "@")
	if !ok || mod == "" {
		return StepKey{}, vane.Invalidf("step key %q: %q has no step@attempt", s, last)
	}
	a, err := strconv.Atoi(att)
	if err != nil || a < 0 {
		return StepKey{}, vane.Invalidf("step key %q: bad attempt %q", s, att)
	}
	k.Step, k.Attempt = mod, a
	return k, nil
}

// child returns the path of a body scope entered through frame f.
func childPath(path []Frame, f Frame) []Frame {
	out := make([]Frame, len(path)+1)
	copy(out, path)
	out[len(path)] = f
	return out
}
