package governor

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// guardCall sends one request to the admin listener with the given Host
// (empty: the listener's address), headers and body.
func guardCall(t *testing.T, r *Relay, method, path, host string, header map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+r.AdminAddr().String()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func guardRelay(t *testing.T, token string) *Relay {
	t.Helper()
	cfg := governedConfig(t, "")
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Admin.Token = token
	return startRelayAt(t, cfg, &clock{t: monday10})
}

func TestAdminRefusesCrossSiteAndRebinding(t *testing.T) {
	for _, token := range []string{"", "s3cret"} {
		t.Run("token="+token, func(t *testing.T) {
			r := guardRelay(t, token)
			_, port, _ := strings.Cut(r.AdminAddr().String(), ":")
			auth := map[string]string{}
			if token != "" {
				auth["Authorization"] = "Bearer " + token
			}
			with := func(extra ...string) map[string]string {
				h := map[string]string{}
				for k, v := range auth {
					h[k] = v
				}
				for i := 0; i+1 < len(extra); i += 2 {
					h[extra[i]] = extra[i+1]
				}
				return h
			}
			add := `{"address": "victim@example.test", "reason": "forged"}`
			refused := []struct {
				name, method, path, host string
				header                   map[string]string
				body                     string
			}{
				{"Origin of another site", "POST", "/v1/suppressions", "", with("Content-Type", "application/json", "Origin", "http://evil.example"), add},
				{"Origin null", "POST", "/v1/suppressions", "", with("Content-Type", "application/json", "Origin", "null"), add},
				{"Sec-Fetch-Site cross-site", "POST", "/v1/suppressions", "", with("Content-Type", "application/json", "Sec-Fetch-Site", "cross-site"), add},
				{"Sec-Fetch-Site same-site", "POST", "/v1/suppressions", "", with("Content-Type", "application/json", "Sec-Fetch-Site", "same-site"), add},
				{"text/plain body", "POST", "/v1/suppressions", "", with("Content-Type", "text/plain"), add},
				{"form body", "POST", "/v1/suppressions", "", with("Content-Type", "application/x-www-form-urlencoded"), add},
				{"no Content-Type", "POST", "/v1/suppressions", "", with(), add},
				{"text/plain events", "POST", "/v1/events", "", with("Content-Type", "text/plain;charset=UTF-8"),
					`{"kind": "unsubscribe", "recipient": "victim@example.test"}`},
				{"text/plain forget", "POST", "/v1/forget", "", with("Content-Type", "text/plain"), `{"address": "victim@example.test"}`},
				{"text/plain queue drop", "POST", "/v1/queue/drop", "", with("Content-Type", "text/plain"), `{"campaign": "x"}`},
				{"import as a form", "POST", "/v1/suppressions/import", "", with("Content-Type", "multipart/form-data; boundary=x"), "victim@example.test,x\n"},
				{"cross-site DELETE", "DELETE", "/v1/suppressions/victim@example.test", "", with("Origin", "http://evil.example"), ""},
				{"rebound Host, stats", "GET", "/v1/stats", "evil.example:" + port, with(), ""},
				{"rebound Host, profile", "GET", "/v1/profiles/victim@example.test", "evil.example", with(), ""},
				{"rebound Host, dashboard", "GET", "/ui/", "evil.example:" + port, with(), ""},
				{"rebound Host, same-origin POST", "POST", "/v1/suppressions", "evil.example:" + port,
					with("Content-Type", "application/json", "Origin", "http://evil.example:"+port), add},
				{"Host of a public IP", "GET", "/v1/stats", "203.0.113.7:" + port, with(), ""},
			}
			for _, tc := range refused {
				code, body := guardCall(t, r, tc.method, tc.path, tc.host, tc.header, tc.body)
				if code != http.StatusForbidden {
					t.Errorf("%s: %d %s, want 403", tc.name, code, body)
				}
			}
			if list, _ := r.DB().Suppressions(); len(list) != 0 {
				t.Errorf("refused requests changed the suppression list: %+v", list)
			}
			fams := scrape(t, r)
			for reason, min := range map[string]float64{"host": 5, "cross_site": 5, "content_type": 6} {
				if got := value(fams, "kadenz_admin_refused_total", "reason", reason); got < min {
					t.Errorf("kadenz_admin_refused_total{reason=%q} = %v, want >= %v", reason, got, min)
				}
			}

			// What curl and the kadenz CLI send still works: a loopback
			// Host (any port), JSON, no Origin; a same-origin browser too.
			allowed := []struct {
				name, method, path, host string
				header                   map[string]string
				body                     string
				want                     int
			}{
				{"JSON from curl", "POST", "/v1/suppressions", "", with("Content-Type", "application/json; charset=utf-8"), add, 200},
				{"localhost Host", "GET", "/v1/stats", "localhost:" + port, with(), "", 200},
				{"LOCALHOST through a tunnel", "GET", "/v1/stats", "LOCALHOST:9000", with(), "", 200},
				{"[::1] Host", "GET", "/v1/stats", "[::1]:" + port, with(), "", 200},
				{"same-origin browser", "POST", "/v1/forget", "", with("Content-Type", "application/json",
					"Origin", "http://"+r.AdminAddr().String(), "Sec-Fetch-Site", "same-origin"), `{"address": "victim@example.test"}`, 200},
				{"DELETE without a body", "DELETE", "/v1/suppressions/victim@example.test", "", with(), "", 200},
				{"CSV import", "POST", "/v1/suppressions/import", "", with("Content-Type", "text/csv"), "other@example.test,x\n", 200},
			}
			for _, tc := range allowed {
				if code, body := guardCall(t, r, tc.method, tc.path, tc.host, tc.header, tc.body); code != tc.want {
					t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.want)
				}
			}
		})
	}
}

// loginMaxFailures is the dashboard's allowance of wrong tokens per client
// within its window (governor/admin/loginlimit.go).
const loginMaxFailures = 10

func TestDashboardLoginLockout(t *testing.T) {
	r := guardRelay(t, "s3cret")
	u := newUIClient(t, r)
	login := func(token string) (int, string) {
		code, _, body := u.do(http.MethodPost, "/ui/login", url.Values{"token": {token}, "next": {"/ui/"}}, nil)
		return code, body
	}
	for i := range loginMaxFailures {
		if code, body := login("guess"); code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d %s", i+1, code, body)
		}
	}
	// The right token still works within the allowance, and clears it.
	if code, _ := login("s3cret"); code != http.StatusSeeOther {
		t.Fatalf("right token after %d failures: %d, want 303", loginMaxFailures, code)
	}
	for range loginMaxFailures + 1 {
		login("guess")
	}
	code, body := login("s3cret")
	if code != http.StatusTooManyRequests || !strings.Contains(body, "Too many wrong tokens") {
		t.Fatalf("right token during the lockout: %d, want 429 %s", code, body)
	}
	fams := scrape(t, r)
	if got := value(fams, "kadenz_admin_login_failures_total"); got != 2*loginMaxFailures+1 {
		t.Errorf("login failures metric %v, want %d", got, 2*loginMaxFailures+1)
	}
	if got := value(fams, "kadenz_admin_login_lockouts_total"); got != 1 {
		t.Errorf("lockouts metric %v, want 1", got)
	}
}
