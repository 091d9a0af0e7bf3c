package admin

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestLoginLimiterWindow(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	l := newLoginLimiter(func() time.Time { return now }, prometheus.NewRegistry())
	// Failures spread wider than the window never lock out.
	for range 3 * loginMaxFailures {
		if l.fail("192.0.2.1") {
			t.Fatal("locked out by failures spread over hours")
		}
		now = now.Add(loginWindow / loginMaxFailures * 2)
	}
	for range loginMaxFailures {
		l.fail("192.0.2.2")
	}
	if !l.fail("192.0.2.2") {
		t.Fatal("not locked out after one failure too many")
	}
	if l.locked("192.0.2.2") != loginLockout || l.locked("192.0.2.3") != 0 {
		t.Fatalf("lockout %v (other client %v)", l.locked("192.0.2.2"), l.locked("192.0.2.3"))
	}
	now = now.Add(loginLockout)
	if l.locked("192.0.2.2") != 0 {
		t.Fatalf("still locked after the lockout: %v", l.locked("192.0.2.2"))
	}
}
