package admin

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// What the admin listener refuses before any handler runs.
//
// Out of the box the admin API has no token and listens on loopback: only
// programs on the same machine reach it. One of them is the operator's web
// browser, which will send requests on behalf of any page it shows. Two
// attacks follow, and this guard closes both:
//
//   - Cross-site requests. A page on evil.example can make the browser POST
//     to http://127.0.0.1:8025/v1/forget. The browser sends such a "simple"
//     request without asking first (a CORS preflight) when its body is a
//     form or text/plain. So every state-changing route refuses a request
//     the browser marks as coming from another site (Sec-Fetch-Site:
//     cross-site or same-site; an Origin that is not the listener's own) and
//     any body that is not application/json (text/csv for the suppression
//     import): a browser cannot send those cross-site without a preflight,
//     which this listener never answers with permission.
//   - DNS rebinding. evil.example first resolves to the attacker's server,
//     then to 127.0.0.1: the page's own origin now reaches the admin
//     listener, and the browser lets it read the answers (profiles, stats).
//     What the attacker cannot change is the Host header, which names
//     evil.example. So without a token a request must name the listener by
//     a loopback name: localhost, 127.0.0.1, [::1] or the address the
//     listener is bound to. Any port is accepted: the name is what a
//     rebinding attacker controls, and an SSH tunnel to the listener
//     (ssh -L 9000:127.0.0.1:8025) arrives with its own port.
//
// With a token the same cross-site checks apply. The Host check applies as
// long as the listener is on loopback; on another address the operator
// chose the name clients use, and the token is what a rebinding page lacks:
// a browser never adds a bearer token by itself.
//
// The dashboard (/ui/) has its own forms: they are form posts carrying a
// CSRF token and are checked by the dashboard (dashboard.go), not here; the
// Host check covers them too.

type adminGuard struct {
	// loopback: the listener is bound to a loopback address.
	loopback bool
	// ownHost is the listener's bound IP, accepted as a Host name.
	ownHost string
	refused *prometheus.CounterVec
}

func newAdminGuard(a *Server, listener net.Addr, loopback bool) *adminGuard {
	g := &adminGuard{loopback: loopback}
	if host, _, err := net.SplitHostPort(listener.String()); err == nil {
		g.ownHost = strings.ToLower(host)
	}
	g.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kadenz_admin_refused_total",
		Help: "Admin API requests refused before any handler ran, by reason: host (not a loopback name), cross_site (Origin or Sec-Fetch-Site), content_type (a body a browser may send cross-site).",
	}, []string{"reason"})
	for _, reason := range []string{"host", "cross_site", "content_type"} {
		g.refused.WithLabelValues(reason)
	}
	a.reg.MustRegister(g.refused)
	return g
}

// wrap puts the guard in front of next.
func (g *adminGuard) wrap(a *Server, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		reason, err := g.check(req, a.config().Admin.Token) // a reload may change the token
		if err != nil {
			g.refused.WithLabelValues(reason).Inc()
			a.log.Warn("admin request refused", "reason", reason, "method", req.Method, "path", req.URL.Path, "client", req.RemoteAddr)
			w.Header().Set("X-Content-Type-Options", "nosniff")
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// check returns the refusal reason (a metric label) and why, or nil.
func (g *adminGuard) check(req *http.Request, token string) (string, error) {
	if (g.loopback || token == "") && !g.hostAllowed(req.Host) {
		return "host", fmt.Errorf("Host %s refused: without a token this listener answers only to localhost, 127.0.0.1 or [::1] (DNS rebinding protection)", quoteInput(req.Host))
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return "", nil
	}
	if isDashboardPath(req.URL.Path) {
		return "", nil // form posts with a CSRF token, checked by the dashboard
	}
	if err := sameOrigin(req); err != nil {
		return "cross_site", err
	}
	want := "application/json"
	if req.URL.Path == "/v1/suppressions/import" {
		want = "text/csv"
	}
	ct := req.Header.Get("Content-Type")
	if ct == "" && req.Method == http.MethodDelete {
		return "", nil // no body; a browser must ask before a cross-site DELETE
	}
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != want {
		return "content_type", fmt.Errorf("Content-Type %s refused: %s %s takes %s", quoteInput(ct), req.Method, req.URL.Path, want)
	}
	return "", nil
}

// hostAllowed reports whether a Host header names this listener by a
// loopback name, with any port or none.
func (g *adminGuard) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		host = hostport[1 : len(hostport)-1]
	}
	host = strings.ToLower(host)
	// No Host at all: HTTP/1.0 from a program (Go's server requires
	// one of HTTP/1.1 clients); a browser always names the site.
	if host == "" || host == "localhost" || host == g.ownHost {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Zone() == "" && a.IsLoopback()
}

// quoteInput quotes text taken from a request for an error message: control
// characters escaped, at most 200 bytes.
func quoteInput(s string) string {
	if len(s) > 200 {
		return fmt.Sprintf("%q...", s[:200])
	}
	return fmt.Sprintf("%q", s)
}
