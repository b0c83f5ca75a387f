package flows

import (
	"fmt"

	"vane"
)

// Errors returned by Advance. Both wrap root sentinels so api can map them.
var (
	// ErrStaleEvent: the flow is not waiting for this event: its key names a
	// step that was never started, a branch not taken, an attempt or iteration
	// that is over, a timer that is no longer set, or a flow that has finished.
	// The driver drops the event. Wraps vane.ErrConflict.
	ErrStaleEvent = fmt.Errorf("flows: the flow is not waiting for this event: %w", vane.ErrConflict)
	// ErrBadEvent: the event is malformed (an unknown event type, a result that
	// is not JSON, a timer fired before its time). Wraps vane.ErrInvalid.
	ErrBadEvent = fmt.Errorf("flows: malformed event: %w", vane.ErrInvalid)
)

// ParseError is a flow definition Parse refused. Module is the id of the module
// at fault ("" for a flow-level field) and Field the JSON path inside it.
// It matches vane.ErrInvalid with errors.Is.
type ParseError struct {
	Module string
	Field  string
	Msg    string
}

func (e *ParseError) Error() string {
	switch {
	case e.Module == "" && e.Field == "":
		return "invalid flow: " + e.Msg
	case e.Module == "":
		return fmt.Sprintf("invalid flow: field %q: %s", e.Field, e.Msg)
	case e.Field == "":
		return fmt.Sprintf("invalid flow: module %q: %s", e.Module, e.Msg)
	}
	return fmt.Sprintf("invalid flow: module %q: field %q: %s", e.Module, e.Field, e.Msg)
}

// Unwrap makes errors.Is(err, vane.ErrInvalid) true.
func (e *ParseError) Unwrap() error { return vane.ErrInvalid }

func stalef(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrStaleEvent)
}

func badEventf(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrBadEvent)
}
