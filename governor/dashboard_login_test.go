package governor

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// Guessing the admin token on the login form stops after
// loginFailureLimit wrong tokens: then even the right one is refused
// (429) from that address.
func TestDashboardLoginIsRateLimited(t *testing.T) {
	const token = "s3cret-token"
	r, _, _, _, _ := startDashboardData(t, token)
	u := newUIClient(t, r)
	u.do(http.MethodGet, "/ui/login", nil, nil)
	for i := range loginFailureLimit {
		if code, _, _ := u.do(http.MethodPost, "/ui/login", url.Values{"token": {"guess"}}, nil); code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d, want 401", i, code)
		}
	}
	if code, _, _ := u.do(http.MethodPost, "/ui/login", url.Values{"token": {token}}, nil); code != http.StatusTooManyRequests {
		t.Errorf("right token after %d wrong ones: %d, want 429", loginFailureLimit, code)
	}
}

// The lockout lifts once the oldest failure leaves the window (times are
// passed in, so no clock is read).
func TestLoginThrottleWindow(t *testing.T) {
	var l loginThrottle
	t0 := time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)
	for i := range loginFailureLimit {
		if !l.locked("127.0.0.1", t0).IsZero() {
			t.Fatalf("locked after %d failures", i)
		}
		l.fail("127.0.0.1", t0.Add(time.Duration(i)*time.Second))
	}
	now := t0.Add(loginFailureLimit * time.Second)
	until := l.locked("127.0.0.1", now)
	if want := t0.Add(loginLockout); !until.Equal(want) {
		t.Fatalf("locked until %v, want %v", until, want)
	}
	if !l.locked("127.0.0.2", now).IsZero() {
		t.Error("another address is locked too")
	}
	if !l.locked("127.0.0.1", t0.Add(loginLockout)).IsZero() {
		t.Error("still locked once the first failure has left the window")
	}
}
