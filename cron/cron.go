// Package cron reads Windmill's cron expressions: the next tick of a
// schedule, and whether an expression and a timezone are valid. It is a leaf
// that the scheduler, which fires ticks, and the API, which refuses a bad
// schedule before storing it, both use.
package cron

import (
	"strings"
	"time"

	"github.com/adhocore/gronx"

	"vane"
)

// Windmill's cron is six fields, seconds first (`sec min hour dom month dow`);
// gronx reads that, the classic five fields (seconds 0) and a seventh year
// field, all of which Windmill's cron versions accept too.

// Validate checks a schedule's cron expression and IANA timezone as the
// scheduler will use them: an error wrapping vane.ErrInvalid names what is
// wrong. An expression that parses but never fires (30 February) is refused.
func Validate(cron, timezone string, now time.Time) error {
	_, err := NextTick(cron, timezone, now)
	return err
}

// NextTick returns the first tick of cron in timezone strictly after after,
// in UTC and truncated to the second. Errors wrap vane.ErrInvalid.
func NextTick(cron, timezone string, after time.Time) (time.Time, error) {
	loc, err := location(timezone)
	if err != nil {
		return time.Time{}, err
	}
	expr := strings.Join(strings.Fields(cron), " ")
	if n := len(strings.Fields(expr)); n < 5 || n > 7 {
		return time.Time{}, vane.Invalidf("schedule %q has %d fields; a cron expression has 6 (sec min hour day month weekday), or 5 or 7", cron, n)
	}
	if !gronx.IsValid(expr) {
		return time.Time{}, vane.Invalidf("schedule %q is not a valid cron expression (6 fields: sec min hour day month weekday, e.g. \"0 */5 * * * *\")", cron)
	}
	// gronx reads the fields in the location of the time it is given, so the
	// tick is computed on the timezone's wall clock. With inclRefTime false
	// gronx answers the first due second after the reference's whole second,
	// which is also the first tick strictly after `after`.
	ref := after.In(loc).Truncate(time.Second)
	next, err := gronx.NextTickAfter(expr, ref, false)
	if err != nil {
		return time.Time{}, vane.Invalidf("schedule %q never fires after %s: %v", cron, ref.Format(time.RFC3339), err)
	}
	if !next.After(after) {
		// Defensive: gronx promises a later tick; a caller relying on
		// "strictly after" must never get the same tick twice.
		return time.Time{}, vane.Invalidf("schedule %q: no tick after %s", cron, after.Format(time.RFC3339))
	}
	return next.UTC(), nil
}

// location loads an IANA timezone; "" is refused, as Windmill requires one.
func location(timezone string) (*time.Location, error) {
	if timezone == "" {
		return nil, vane.Invalidf("timezone is required (an IANA name such as \"UTC\" or \"Europe/Paris\")")
	}
	loc, err := time.LoadLocation(timezone)
	if err != nil {
		return nil, vane.Invalidf("timezone %q is not a known IANA timezone", timezone)
	}
	return loc, nil
}
