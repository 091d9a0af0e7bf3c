package admin

import (
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Rate limit on the dashboard's login form.
//
// The admin token is the only secret between the network and the whole
// admin API, and the login form checks it on every POST: without a limit a
// client could try thousands of tokens a second. Each client IP may fail
// loginMaxFailures times within loginWindow; the next failure locks it out
// for loginLockout, during which its attempts are answered 429 without the
// token being looked at (so a lucky guess in the lockout learns nothing).
// A successful login clears the client's failures. Behind a reverse proxy
// every client shares the proxy's address: the lockout then applies to
// all of them, which errs on the side of the token.

const (
	loginMaxFailures = 10
	loginWindow      = 15 * time.Minute
	loginLockout     = 15 * time.Minute
	// loginMaxClients bounds the memory the limiter keeps.
	loginMaxClients = 10000
)

type loginLimiter struct {
	now func() time.Time

	mu      sync.Mutex
	clients map[string]*loginRecord

	failures, lockouts prometheus.Counter
}

type loginRecord struct {
	failures    []time.Time // within the window, oldest first
	lockedUntil time.Time
}

func newLoginLimiter(now func() time.Time, reg prometheus.Registerer) *loginLimiter {
	l := &loginLimiter{now: now, clients: map[string]*loginRecord{},
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kadenz_admin_login_failures_total",
			Help: "Dashboard logins refused for a wrong token.",
		}),
		lockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kadenz_admin_login_lockouts_total",
			Help: "Client IPs locked out of the dashboard login after too many wrong tokens.",
		}),
	}
	reg.MustRegister(l.failures, l.lockouts)
	return l
}

// clientIP is the address part of a request's RemoteAddr.
func clientIP(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// locked reports how long the client must still wait, or 0.
func (l *loginLimiter) locked(ip string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec := l.clients[ip]
	if rec == nil {
		return 0
	}
	if wait := rec.lockedUntil.Sub(l.now()); wait > 0 {
		return wait
	}
	return 0
}

// fail records a wrong token and reports whether it locked the client out.
func (l *loginLimiter) fail(ip string) bool {
	l.failures.Inc()
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	rec := l.clients[ip]
	if rec == nil {
		l.makeRoom(now)
		rec = &loginRecord{}
		l.clients[ip] = rec
	}
	keep := rec.failures[:0]
	for _, t := range rec.failures {
		if now.Sub(t) < loginWindow {
			keep = append(keep, t)
		}
	}
	rec.failures = append(keep, now)
	if len(rec.failures) > loginMaxFailures {
		rec.failures = rec.failures[:0]
		rec.lockedUntil = now.Add(loginLockout)
		l.lockouts.Inc()
		return true
	}
	return false
}

// succeed forgets the client's failures.
func (l *loginLimiter) succeed(ip string) {
	l.mu.Lock()
	delete(l.clients, ip)
	l.mu.Unlock()
}

// makeRoom drops records that no longer matter, and if the map is still
// full, one arbitrary record. Called with mu held.
func (l *loginLimiter) makeRoom(now time.Time) {
	if len(l.clients) < loginMaxClients {
		return
	}
	for ip, rec := range l.clients {
		if !now.Before(rec.lockedUntil) && (len(rec.failures) == 0 || now.Sub(rec.failures[len(rec.failures)-1]) >= loginWindow) {
			delete(l.clients, ip)
		}
	}
	for ip := range l.clients {
		if len(l.clients) < loginMaxClients {
			break
		}
		delete(l.clients, ip)
	}
}
