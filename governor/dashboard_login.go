package governor

import (
	"net"
	"sync"
	"time"
)

// loginThrottle limits guessing the admin token on the dashboard's login
// form: after loginFailureLimit wrong tokens from one client address within
// loginLockout, the form refuses that address (429) until the oldest of
// them has left the window. The same count-the-failures rule as SMTP AUTH
// (governor/intake, intake.auth_failure_limit); the admin listener is
// normally on loopback, so this bounds a local process or a page that got
// past the origin checks, not the whole network.
type loginThrottle struct {
	mu       sync.Mutex
	failures map[string][]time.Time
}

const (
	loginFailureLimit = 10
	loginLockout      = 10 * time.Minute
	maxLoginClients   = 10_000
)

func clientHost(remoteAddr string) string {
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return h
	}
	return remoteAddr
}

// recent prunes and returns client's failures in the window; mu held.
func (l *loginThrottle) recent(client string, now time.Time) []time.Time {
	f := l.failures[client]
	for len(f) > 0 && !f[0].After(now.Add(-loginLockout)) {
		f = f[1:]
	}
	if len(f) == 0 {
		delete(l.failures, client)
	} else {
		l.failures[client] = f
	}
	return f
}

// locked says until when client may not try, zero if it may.
func (l *loginThrottle) locked(client string, now time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.recent(client, now); len(f) >= loginFailureLimit {
		return f[len(f)-loginFailureLimit].Add(loginLockout)
	}
	return time.Time{}
}

func (l *loginThrottle) fail(client string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failures == nil {
		l.failures = map[string][]time.Time{}
	}
	if len(l.failures) >= maxLoginClients {
		for c := range l.failures {
			l.recent(c, now)
		}
	}
	f := append(l.recent(client, now), now)
	if len(f) > loginFailureLimit {
		f = f[len(f)-loginFailureLimit:]
	}
	l.failures[client] = f
}
