package flows

import (
	"hash/fnv"
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
// retries too, from 1) waits multiplier × seconds^n whole seconds, and with a
// random_factor r that delay moves up or down by a whole percentage in [0, r)
// (windmill-common/src/flows.rs Retry::interval; the docs' "delay = multiplier
// * base ^ (number of attempt)"). Windmill draws the percentage and the
// direction at random; vane draws them from seed (the step key), so a replay
// computes the same delay.
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
	limit := int64(maxRetryInterval / time.Second)
	secs := int64(r.ExponentialMultiplier)
	for i := 0; i <= failures && secs <= limit; i++ {
		secs *= int64(r.ExponentialSeconds)
	}
	secs = min(secs, limit)
	if r.RandomFactor > 0 {
		h := fnv.New64a()
		h.Write([]byte(seed))
		sum := h.Sum64()
		pct := int64(sum % uint64(min(r.RandomFactor, 100)))
		if sum>>63 == 1 {
			secs += secs * pct / 100
		} else {
			secs -= secs * pct / 100
		}
	}
	return min(time.Duration(secs)*time.Second, maxRetryInterval), true
}
