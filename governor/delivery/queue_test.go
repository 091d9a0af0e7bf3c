package delivery

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"kadenz/store"
)

func TestIsPermanent(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&smtp.SMTPError{Code: 550}, true},
		{fmt.Errorf("RCPT TO: %w", &smtp.SMTPError{Code: 554}), true},
		{&smtp.SMTPError{Code: 451}, false},
		{&smtp.SMTPError{Code: 421}, false},
		{errors.New("connection refused"), false},
		{Permanent(errors.New("body missing")), true},
	} {
		if got := IsPermanent(tc.err); got != tc.want {
			t.Errorf("IsPermanent(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestBackoffDoublesWithJitterAndCap(t *testing.T) {
	q := &Queue{opts: Options{RetryInitial: time.Minute, RetryMax: 10 * time.Minute}}
	for _, jitter := range []float64{0, 0.5, 0.999} {
		q.opts.Jitter = func() float64 { return jitter }
		for attempt, base := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Minute, 4: 8 * time.Minute, 5: 10 * time.Minute, 50: 10 * time.Minute} {
			d := q.backoff(attempt)
			if d < base/2 || d > base {
				t.Errorf("attempt %d jitter %v: %v not in [%v, %v]", attempt, jitter, d, base/2, base)
			}
		}
	}
}

func TestOutcome(t *testing.T) {
	q := &Queue{opts: Options{RetryInitial: time.Minute, RetryMax: time.Hour, MaxQueueLifetime: 24 * time.Hour, Jitter: func() float64 { return 1 }}}
	created := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	e := store.Envelope{ID: "m-1", Created: created, State: store.StateDelivering}

	if got := q.outcome(e, nil, created); got.State != store.StateDelivered || got.Attempts != 1 {
		t.Errorf("success: %+v", got)
	}
	if got := q.outcome(e, &smtp.SMTPError{Code: 550, Message: "no"}, created); got.State != store.StateFailed {
		t.Errorf("5xx: %+v", got)
	}
	now := created.Add(time.Hour)
	got := q.outcome(e, &smtp.SMTPError{Code: 451, Message: "later"}, now)
	if got.State != store.StateDeferred || !got.Due.After(now) || got.LastError == "" {
		t.Errorf("4xx: %+v", got)
	}
	// Near the end of the lifetime the last try is at the end, not later.
	now = created.Add(24*time.Hour - time.Second)
	got = q.outcome(e, errors.New("refused"), now)
	if got.State != store.StateDeferred || !got.Due.Equal(created.Add(24*time.Hour)) {
		t.Errorf("near expiry: %+v", got)
	}
	got = q.outcome(got, errors.New("refused"), created.Add(24*time.Hour))
	if got.State != store.StateFailed {
		t.Errorf("at expiry: %+v", got)
	}
}
