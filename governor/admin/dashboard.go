package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"
)

// The dashboard: HTML pages for people, served by the admin listener under
// /ui/. It reads the same functions as the JSON API (stats, campaign
// reports, profile view, queue listing, explain) and changes state only
// through the same queue actions, so a page never shows a number the API
// would not give.
//
// A browser cannot send the API's bearer token, so when admin.token is set
// the dashboard asks for it once on a login form and then keeps a session:
// a random ID in an HttpOnly, SameSite=Strict cookie, mapped in memory to
// its expiry, its CSRF token and a hash of the admin token it was opened
// with (a reload that changes the token ends every session). Without a
// token — a loopback listener — the dashboard is open, as the API is, and a
// session is opened on the first visit only to carry the CSRF token.
//
// Every POST must come from a page of the dashboard: the browser's
// Sec-Fetch-Site and Origin headers, when present, must say same origin,
// and the form must carry the session's CSRF token (compared in constant
// time). Pages need no JavaScript; charts are SVG drawn on the server.

//go:embed dashboard
var dashboardFiles embed.FS

const (
	sessionCookie = "kadenz_ui"
	// sessionLifetime is how long a dashboard login lasts.
	sessionLifetime = 12 * time.Hour
	// maxSessions bounds the map: without a token every new browser opens
	// one; the oldest go first.
	maxSessions = 1000
)

type dashboard struct {
	a     *Server
	pages map[string]*template.Template
	// wall is the wall clock: sessions expire in real time, whatever the
	// relay's (possibly virtual) clock says.
	wall func() time.Time

	mu       sync.Mutex
	sessions map[string]*uiSession

	logins *loginLimiter
	// lift caches the overview's recipient counts.
	lift liftCache
}

type uiSession struct {
	csrf    string
	expires time.Time
	// token is a hash of the admin token the session was opened under.
	token [32]byte
}

// registerDashboardRoutes adds the dashboard's routes to the admin mux.
func (a *Server) registerDashboardRoutes(mux *http.ServeMux) {
	d := &dashboard{a: a, wall: time.Now, sessions: map[string]*uiSession{}, pages: map[string]*template.Template{}}
	d.logins = newLoginLimiter(func() time.Time { return d.wall() }, a.reg)
	for _, page := range []string{"login", "overview", "campaigns", "campaign", "review", "recipient", "envelope", "error"} {
		d.pages[page] = template.Must(template.New("").Funcs(dashboardFuncs).ParseFS(dashboardFiles,
			"dashboard/layout.html", "dashboard/"+page+".html"))
	}
	static, _ := fs.Sub(dashboardFiles, "dashboard/static")
	mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /ui", func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, "/ui/", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /ui/login", d.handleLoginForm)
	mux.HandleFunc("POST /ui/login", d.handleLogin)
	mux.HandleFunc("POST /ui/logout", d.post(d.handleLogout))
	mux.HandleFunc("GET /ui/{$}", d.get(d.handleOverview))
	mux.HandleFunc("GET /ui/campaigns", d.get(d.handleCampaigns))
	mux.HandleFunc("GET /ui/campaigns/{name}", d.get(d.handleCampaign))
	mux.HandleFunc("POST /ui/campaigns/{name}/{op}", d.post(d.handleCampaignAction))
	mux.HandleFunc("GET /ui/review", d.get(d.handleReview))
	mux.HandleFunc("POST /ui/review/{op}", d.post(d.handleReviewAction))
	mux.HandleFunc("GET /ui/recipients", d.get(d.handleRecipientSearch))
	mux.HandleFunc("GET /ui/recipients/{address}", d.get(d.handleRecipient))
	mux.HandleFunc("GET /ui/envelopes/{id}", d.get(d.handleEnvelope))
}

// isDashboardPath says whether the bearer token check leaves a request to
// the dashboard's own session check. Only clean paths: anything else is
// redirected by the mux to its clean form, which is checked again.
func isDashboardPath(p string) bool {
	if p != "/ui" && !strings.HasPrefix(p, "/ui/") {
		return false
	}
	c := path.Clean(p)
	return c == p || c+"/" == p
}

// pageData is what every page template gets.
type pageData struct {
	Title string
	Nav   string
	CSRF  string
	// Login says a token is configured, so there is a session to end.
	Login bool
	Now   time.Time
	Body  any
}

func tokenHash(token string) [32]byte { return sha256.Sum256([]byte("kadenz-ui\x00" + token)) }

func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// session returns the request's valid session, or nil.
func (d *dashboard) session(req *http.Request) *uiSession {
	c, err := req.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	want := tokenHash(d.a.config().Admin.Token)
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sessions[c.Value]
	if s == nil {
		return nil
	}
	if !d.wall().Before(s.expires) || subtle.ConstantTimeCompare(s.token[:], want[:]) != 1 {
		delete(d.sessions, c.Value)
		return nil
	}
	return s
}

// openSession starts a session and sets its cookie.
func (d *dashboard) openSession(w http.ResponseWriter, req *http.Request) *uiSession {
	now := d.wall()
	id := randomToken()
	s := &uiSession{csrf: randomToken(), expires: now.Add(sessionLifetime), token: tokenHash(d.a.config().Admin.Token)}
	d.mu.Lock()
	for k, old := range d.sessions {
		if !now.Before(old.expires) {
			delete(d.sessions, k)
		}
	}
	for len(d.sessions) >= maxSessions {
		var oldest string
		for k, old := range d.sessions {
			if oldest == "" || old.expires.Before(d.sessions[oldest].expires) {
				oldest = k
			}
		}
		delete(d.sessions, oldest)
	}
	d.sessions[id] = s
	d.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/ui/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: req.TLS != nil, Expires: s.expires})
	return s
}

// get wraps a page: it needs a session, which is opened on the spot when
// no token is configured and otherwise by logging in.
func (d *dashboard) get(page func(w http.ResponseWriter, req *http.Request, s *uiSession)) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		s := d.session(req)
		if s == nil {
			if d.a.config().Admin.Token != "" {
				http.Redirect(w, req, "/ui/login?next="+url.QueryEscape(req.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s = d.openSession(w, req)
		}
		page(w, req, s)
	}
}

// post wraps a state-changing handler: a session, a same-origin request
// and the session's CSRF token in the form, or 403 and nothing changes.
func (d *dashboard) post(action func(w http.ResponseWriter, req *http.Request, s *uiSession)) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		if err := sameOrigin(req); err != nil {
			d.fail(w, req, nil, http.StatusForbidden, err.Error())
			return
		}
		s := d.session(req)
		if s == nil {
			d.fail(w, req, nil, http.StatusForbidden, "no dashboard session: open the page again (and log in) before changing anything")
			return
		}
		req.Body = http.MaxBytesReader(w, req.Body, 64<<10)
		if err := req.ParseForm(); err != nil {
			d.fail(w, req, s, http.StatusBadRequest, "unreadable form: "+err.Error())
			return
		}
		if subtle.ConstantTimeCompare([]byte(req.PostForm.Get("csrf")), []byte(s.csrf)) != 1 {
			d.fail(w, req, s, http.StatusForbidden, "the form's CSRF token is missing or wrong: reload the page and try again")
			return
		}
		action(w, req, s)
	}
}

// sameOrigin refuses a request a browser says came from another site
// (Fetch Metadata, then Origin; RFC 6454 section 7).
func sameOrigin(req *http.Request) error {
	if site := req.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return fmt.Errorf("cross-site request refused (Sec-Fetch-Site: %s)", site)
	}
	if o := req.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if o == "null" || err != nil || u.Host != req.Host {
			return fmt.Errorf("request from origin %q refused: the dashboard only accepts forms from %s", o, req.Host)
		}
	}
	return nil
}

// render writes a page with the security headers every page gets.
func (d *dashboard) render(w http.ResponseWriter, code int, page string, data pageData) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	data.Login = d.a.config().Admin.Token != ""
	data.Now = d.a.now()
	w.WriteHeader(code)
	if err := d.pages[page].ExecuteTemplate(w, "layout", data); err != nil {
		d.a.log.Error("dashboard page", "page", page, "error", err)
	}
}

// fail shows an error page with the status code.
func (d *dashboard) fail(w http.ResponseWriter, _ *http.Request, s *uiSession, code int, msg string) {
	data := pageData{Title: http.StatusText(code), Body: msg}
	if s != nil {
		data.CSRF = s.csrf
	}
	d.render(w, code, "error", data)
}

func (d *dashboard) handleLoginForm(w http.ResponseWriter, req *http.Request) {
	if d.a.config().Admin.Token == "" || d.session(req) != nil {
		http.Redirect(w, req, safeNext(req.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	d.render(w, http.StatusOK, "login", pageData{Title: "Log in", Body: loginForm{Next: req.URL.Query().Get("next")}})
}

type loginForm struct {
	Next, Error string
}

func (d *dashboard) handleLogin(w http.ResponseWriter, req *http.Request) {
	if err := sameOrigin(req); err != nil {
		d.fail(w, req, nil, http.StatusForbidden, err.Error())
		return
	}
	req.Body = http.MaxBytesReader(w, req.Body, 16<<10)
	if err := req.ParseForm(); err != nil {
		d.fail(w, req, nil, http.StatusBadRequest, "unreadable form: "+err.Error())
		return
	}
	token := d.a.config().Admin.Token
	next := req.PostForm.Get("next")
	if token == "" {
		http.Redirect(w, req, safeNext(next), http.StatusSeeOther)
		return
	}
	ip := clientIP(req.RemoteAddr)
	if wait := d.logins.locked(ip); wait > 0 {
		secs := int(wait.Round(time.Second) / time.Second)
		w.Header().Set("Retry-After", fmt.Sprint(max(secs, 1)))
		d.render(w, http.StatusTooManyRequests, "login", pageData{Title: "Log in", Body: loginForm{Next: next,
			Error: fmt.Sprintf("Too many wrong tokens from %s: try again in %s.", ip, wait.Round(time.Second))}})
		return
	}
	if subtle.ConstantTimeCompare([]byte(req.PostForm.Get("token")), []byte(token)) != 1 {
		d.a.log.Warn("dashboard login refused: wrong token", "client", req.RemoteAddr)
		if d.logins.fail(ip) {
			d.a.log.Warn("dashboard login locked out: too many wrong tokens", "client", ip,
				"failures", loginMaxFailures+1, "window", loginWindow, "lockout", loginLockout)
		}
		d.render(w, http.StatusUnauthorized, "login", pageData{Title: "Log in", Body: loginForm{Next: next, Error: "That is not the admin token."}})
		return
	}
	d.logins.succeed(ip)
	d.openSession(w, req)
	http.Redirect(w, req, safeNext(next), http.StatusSeeOther)
}

// safeNext keeps a redirect after login inside the dashboard.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/"
	}
	return next
}

func (d *dashboard) handleLogout(w http.ResponseWriter, req *http.Request, _ *uiSession) {
	if c, err := req.Cookie(sessionCookie); err == nil {
		d.mu.Lock()
		delete(d.sessions, c.Value)
		d.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/ui/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, req, "/ui/login", http.StatusSeeOther)
}
