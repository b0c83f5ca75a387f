package cron

import (
	"errors"
	"testing"
	"time"

	"vane"
)

func TestNextTick(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name, cron, tz, after, want string
	}{
		{"every second, on a whole second", "* * * * * *", "UTC", "2026-01-01T12:00:00Z", "2026-01-01T12:00:01Z"},
		{"every second, mid-second", "*/1 * * * * *", "UTC", "2026-01-01T12:00:00.5Z", "2026-01-01T12:00:01Z"},
		{"every 5 minutes, seconds first", "0 */5 * * * *", "UTC", "2026-01-01T12:00:00Z", "2026-01-01T12:05:00Z"},
		{"five fields: minutes first, second 0", "*/5 * * * *", "UTC", "2026-01-01T12:01:30Z", "2026-01-01T12:05:00Z"},
		{"noon daily", "0 0 12 * * *", "UTC", "2026-01-01T12:00:00Z", "2026-01-02T12:00:00Z"},
		{"noon in Paris is 11:00 UTC in winter", "0 0 12 * * *", "Europe/Paris", "2026-01-01T00:00:00Z", "2026-01-01T11:00:00Z"},
		{"noon in Paris is 10:00 UTC in summer", "0 0 12 * * *", "Europe/Paris", "2026-07-01T00:00:00Z", "2026-07-01T10:00:00Z"},
		{"Sunday by name", "0 0 0 * * sun", "UTC", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"},
		{"Sunday as 0", "0 0 0 * * 0", "UTC", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"},
		{"extra spaces", " 0  0 12 * * * ", "UTC", "2026-01-01T00:00:00Z", "2026-01-01T12:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NextTick(tt.cron, tt.tz, at(tt.after))
			if err != nil {
				t.Fatalf("NextTick: %v", err)
			}
			if want := at(tt.want); !got.Equal(want) || got.Location() != time.UTC {
				t.Fatalf("NextTick(%q, %q, %s) = %s, want %s (UTC)", tt.cron, tt.tz, tt.after, got, want)
			}
		})
	}
}

func TestNextTick_Errors(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct{ name, cron, tz string }{
		{"empty", "", "UTC"},
		{"too few fields", "* * *", "UTC"},
		{"too many fields", "* * * * * * * *", "UTC"},
		{"not cron", "every minute please", "UTC"},
		{"second out of range", "61 * * * * *", "UTC"},
		{"never fires", "0 0 0 30 2 *", "UTC"},
		{"unknown timezone", "* * * * * *", "Mars/Olympus"},
		{"no timezone", "* * * * * *", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NextTick(tt.cron, tt.tz, now); !errors.Is(err, vane.ErrInvalid) {
				t.Fatalf("NextTick(%q, %q) = %v, want an ErrInvalid", tt.cron, tt.tz, err)
			}
		})
	}
}

// TestNextTick_Consecutive walks a schedule every second: each tick is the
// previous one plus a second, never the same twice.
func TestNextTick_Consecutive(t *testing.T) {
	tick := time.Date(2026, 3, 29, 0, 59, 58, 0, time.UTC) // across Europe/Paris's DST change
	for i := 0; i < 10; i++ {
		next, err := NextTick("* * * * * *", "Europe/Paris", tick)
		if err != nil {
			t.Fatal(err)
		}
		if want := tick.Add(time.Second); !next.Equal(want) {
			t.Fatalf("after %s: got %s, want %s", tick, next, want)
		}
		tick = next
	}
}
