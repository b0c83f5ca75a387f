package scheduler

import (
	"testing"
	"time"
)

func TestJobID(t *testing.T) {
	tick := time.Date(2026, 1, 1, 12, 0, 1, 0, time.UTC)
	id := JobID("main", "u/alice/every", 42, tick)
	if got := JobID("main", "u/alice/every", 42, tick.In(time.FixedZone("x", 3600))); got != id {
		t.Fatalf("the same instant in another zone gives %s, want %s", got, id)
	}
	if len(id) != 36 || id[14] != '5' {
		t.Fatalf("id %q is not a version-5 UUID", id)
	}
	others := map[string]string{
		"another workspace": JobID("other", "u/alice/every", 42, tick),
		"another path":      JobID("main", "u/alice/every2", 42, tick),
		"another version":   JobID("main", "u/alice/every", 43, tick),
		"another tick":      JobID("main", "u/alice/every", 42, tick.Add(time.Second)),
		"a nanosecond off":  JobID("main", "u/alice/every", 42, tick.Add(time.Nanosecond)),
	}
	for name, other := range others {
		if other == id {
			t.Errorf("%s gives the same id %s", name, id)
		}
	}
}
