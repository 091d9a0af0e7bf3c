// Package retry holds the one backoff rule of every loop in Kadenz that
// retries a peer: delivery to the smarthost and the IMAP feedback readers.
package retry

import "time"

// Backoff returns the delay before retry number attempt (1-based): initial
// doubled per attempt, capped at max, with "equal jitter" — half fixed,
// half random — so that work that failed together does not retry in the
// same instant. jitter is a number in [0,1) (rand.Float64, or fixed in
// tests).
func Backoff(attempt int, initial, max time.Duration, jitter float64) time.Duration {
	d := initial
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d/2 + time.Duration(jitter*float64(d/2))
}
