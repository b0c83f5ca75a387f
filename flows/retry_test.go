package flows

import (
	"testing"
	"time"
)

// TestRetry_Interval: constant attempts first, then exponential ones whose
// n-th retry (n counting the constant ones) waits multiplier × seconds^n
// (windmill-common flows.rs Retry::interval; docs "delay = multiplier * base
// ^ (number of attempt)"), capped at 6 hours; random_factor moves the delay
// by a whole percentage below it, up or down, the same for the same step key.
func TestRetry_Interval(t *testing.T) {
	r := &Retry{ConstantAttempts: 2, ConstantSeconds: 5, ExponentialAttempts: 3, ExponentialMultiplier: 2, ExponentialSeconds: 3}
	cases := []struct {
		name     string
		failures int
		want     time.Duration
		ok       bool
	}{
		{"first constant", 0, 5 * time.Second, true},
		{"second constant", 1, 5 * time.Second, true},
		{"first exponential is 2*3^3", 2, 54 * time.Second, true},
		{"second exponential", 3, 162 * time.Second, true},
		{"third exponential", 4, 486 * time.Second, true},
		{"no attempt left", 5, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := r.interval(c.failures, "a@0")
			if got != c.want || ok != c.ok {
				t.Fatalf("interval(%d) = %v, %v; want %v, %v", c.failures, got, ok, c.want, c.ok)
			}
		})
	}
	capped := &Retry{ExponentialAttempts: 10, ExponentialMultiplier: 1, ExponentialSeconds: 60}
	if got, ok := capped.interval(5, "a@5"); !ok || got != maxRetryInterval {
		t.Errorf("a huge delay is not capped: %v", got)
	}
	jit := &Retry{ExponentialAttempts: 3, ExponentialMultiplier: 1, ExponentialSeconds: 10, RandomFactor: 50}
	seen := map[time.Duration]bool{}
	for _, key := range []string{"a@0", "a@1", "l@0#3/a@0", "b@0"} {
		d1, _ := jit.interval(0, key)
		d2, _ := jit.interval(0, key)
		if d1 != d2 {
			t.Errorf("key %s: %v then %v; the jitter must be deterministic", key, d1, d2)
		}
		if d1 < 5*time.Second || d1 > 15*time.Second {
			t.Errorf("key %s: %v outside 10s ± 50%%", key, d1)
		}
		seen[d1] = true
	}
	if len(seen) < 2 {
		t.Errorf("random_factor gives every key the same delay")
	}
}
