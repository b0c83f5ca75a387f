package flows

import (
	"hash/fnv"
	"math"
	"time"
)

// Windmill's retry bounds (windmill-common/src/flow_status.rs:
// MAX_RETRY_ATTEMPTS, MAX_RETRY_INTERVAL).
const (
	maxRetryAttempts = 1000
	maxRetryInterval = 6 * time.Hour
)

// interval returns the delay before the retry that follows failures previous
// failures of the module, or false when no attempt is left. Constant attempts
// come first, then exponential ones; the n-th retry (n counting constant
// retries too, from 1) waits multiplier × seconds^n (windmill-common/src/flows.rs
// Retry::interval; the docs' "delay = multiplier * base ^ (number of attempt)").
// random_factor spreads the delay by ±random_factor percent, drawn from seed
// (the step key) so a replay computes the same delay.
func (r *Retry) interval(failures int, seed string) (time.Duration, bool) {
	if failures >= maxRetryAttempts {
		return 0, false
	}
	if failures < r.ConstantAttempts {
		return min(time.Duration(r.ConstantSeconds)*time.Second, maxRetryInterval), true
	}
	if failures-r.ConstantAttempts >= r.ExponentialAttempts {
		return 0, false
	}
	secs := float64(r.ExponentialMultiplier) * math.Pow(float64(r.ExponentialSeconds), float64(failures+1))
	if r.RandomFactor > 0 {
		h := fnv.New64a()
		h.Write([]byte(seed))
		u := float64(h.Sum64()>>11)/float64(1<<53)*2 - 1 // [-1, 1)
		secs *= 1 + float64(r.RandomFactor)/100*u
	}
	if secs < 0 {
		secs = 0
	}
	if secs > maxRetryInterval.Seconds() {
		return maxRetryInterval, true
	}
	return time.Duration(secs * float64(time.Second)), true
}
