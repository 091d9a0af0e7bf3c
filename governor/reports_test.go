package governor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	bolt "go.etcd.io/bbolt"

	"kadenz/config"
	"kadenz/governor/admin/api"
	"kadenz/scoring"
	"kadenz/store"
)

// adminCall makes one request to the relay's admin API and returns the
// status and body.
func adminCall(t *testing.T, r *Relay, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	ct := ""
	if body != nil {
		b, _ := json.Marshal(body)
		rd, ct = bytes.NewReader(b), "application/json"
	}
	return adminRequest(t, r, method, path, token, ct, rd)
}

// adminRequest sends one request to the relay's admin listener, with a
// bearer token and a content type when they are not empty, and returns the
// status and the body. The other admin helpers of the tests build on it.
func adminRequest(t *testing.T, r *Relay, method, path, token, contentType string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+r.AdminAddr().String()+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func adminJSON(t *testing.T, r *Relay, method, path string, body, into any) {
	t.Helper()
	code, out := adminCall(t, r, method, path, "", body)
	if code != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, path, code, out)
	}
	if err := json.Unmarshal(out, into); err != nil {
		t.Fatalf("%s %s: %v in %s", method, path, err, out)
	}
}

// scrape fetches /metrics with a real HTTP GET and parses the text format.
func scrape(t *testing.T, r *Relay) map[string]*dto.MetricFamily {
	t.Helper()
	code, out := adminCall(t, r, http.MethodGet, "/metrics", r.config().Admin.Token, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, out)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// value returns the value of the sample of family name whose labels
// include all of labels (name=value pairs); for a histogram, its count.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	sum := 0.0
	found := false
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			ok := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					ok = true
				}
			}
			if !ok {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	if !found {
		return -1
	}
	return sum
}

func adminConfig(t *testing.T, upstreamAddr string) *config.Config {
	cfg := governedConfig(t, upstreamAddr)
	cfg.Admin.Listen = "127.0.0.1:0"
	return cfg
}

func transactional(to, id string) string {
	return "From: shop@shop.test\r\nTo: " + to + "\r\nSubject: Your receipt\r\nMessage-ID: <" + id + "@shop.test>\r\n\r\nThank you.\r\n"
}

func TestMetricsMoveAfterSubmissions(t *testing.T) {
	// The first delivery attempt is refused with a 451, the rest accepted.
	up := startUpstream(t, func(n int) *smtp.SMTPError {
		if n == 1 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		}
		return nil
	})
	c := &clock{t: monday10}
	r := startRelayAt(t, adminConfig(t, up.addr), c)

	before := scrape(t, r)
	if v := value(before, "kadenz_messages_accepted_total"); v != -1 {
		t.Fatalf("accepted before any mail: %v", v)
	}
	if value(before, "go_goroutines") <= 0 || value(before, "process_start_time_seconds") <= 0 {
		t.Errorf("go and process collectors missing")
	}
	if v := value(before, "kadenz_presence_look_share"); v != -1 {
		t.Errorf("look share before the engine learned anything: %v", v)
	}
	cl := dial(t, r)
	for i, to := range []string{"ann@example.test", "bob@example.test"} {
		if err := submit(t, cl, "shop@shop.test", []string{to}, transactional(to, "t"+string(rune('0'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	if err := submit(t, cl, "news@shop.test", []string{"carl@example.test"}, marketing("Winter boots", "")); err != nil {
		t.Fatal(err)
	}
	// One transactional message is refused once (451) and deferred; move
	// virtual time past its retry.
	waitFor(t, "the first attempts", func() bool { up.mu.Lock(); defer up.mu.Unlock(); return up.attempts >= 2 })
	step(t, r, c, time.Second)
	waitFor(t, "both transactional deliveries", func() bool { return len(up.messages()) == 2 })
	waitFor(t, "the delivered counter", func() bool {
		return value(scrape(t, r), "kadenz_deliveries_total", "outcome", "delivered") == 2
	})

	m := scrape(t, r)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"kadenz_messages_accepted_total", []string{"class", "transactional"}, 2},
		{"kadenz_messages_accepted_total", []string{"class", "marketing"}, 1},
		{"kadenz_deliveries_total", []string{"outcome", "deferred"}, 1},
		{"kadenz_deliveries_total", []string{"outcome", "failed"}, 0},
		{"kadenz_upstream_errors_total", []string{"kind", "smtp_4xx"}, 1},
		{"kadenz_delivery_latency_seconds", nil, 2},
		{"kadenz_queue_envelopes", []string{"state", "held"}, 1},
		{"kadenz_queue_envelopes", []string{"state", "delivered"}, 2},
		{"kadenz_queue_envelopes", []string{"state", "review"}, 0},
		{"kadenz_config_reload_total", []string{"result", "error"}, 0},
	} {
		if got := value(m, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The retry happened one virtual second after acceptance.
	if h := m["kadenz_delivery_latency_seconds"].Metric[0].Histogram; h.GetSampleSum() < 1 {
		t.Errorf("latency sum %v s, want at least the 1 s retry", h.GetSampleSum())
	}

	// The hold window ends: the engine decides, and the decision is counted
	// by action and reason code.
	step(t, r, c, 5*time.Minute)
	waitFor(t, "the decision", func() bool {
		return value(scrape(t, r), "kadenz_decided_envelopes_total") == 1
	})
	m = scrape(t, r)
	env := envelopeOf(t, r.DB(), "carl@example.test", 0)
	rec := decisionsOf(t, r.DB(), env.ID)[0]
	for _, reason := range rec.Reasons {
		if got := value(m, "kadenz_decisions_total", "action", rec.Action, "reason", reason); got != 1 {
			t.Errorf("kadenz_decisions_total{action=%s,reason=%s} = %v, want 1", rec.Action, reason, got)
		}
	}
	if got := value(m, "kadenz_decided_envelopes_total", "mode", "enforce", "action", rec.Action); got != 1 {
		t.Errorf("kadenz_decided_envelopes_total{enforce,%s} = %v", rec.Action, got)
	}
	// What the engine learned of the list's readers, before it has
	// anything to fit from: even odds, the default delay law and the
	// prior stop rate.
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"kadenz_presence_look_share", nil, 0.5},
		{"kadenz_presence_open_delay_seconds", []string{"reader", "present"}, scoring.DefaultOpenDelayPresent.Seconds()},
		{"kadenz_presence_open_delay_seconds", []string{"reader", "away"}, scoring.DefaultOpenDelayAway.Seconds()},
		{"kadenz_list_stop_rate", nil, scoring.DefaultPopulation().UnsubscribeRate},
	} {
		if got := value(m, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	// The mailbox reader's hook.
	r.MailboxPolled("bounces", nil)
	r.MailboxPolled("bounces", errors.New("connection refused"))
	m = scrape(t, r)
	if got, want := value(m, "kadenz_mailbox_last_success_timestamp_seconds", "mailbox", "bounces"), float64(c.Now().Unix()); got != want {
		t.Errorf("mailbox last success %v, want %v", got, want)
	}
	if got := value(m, "kadenz_mailbox_errors_total", "mailbox", "bounces"); got != 1 {
		t.Errorf("mailbox errors %v, want 1", got)
	}
}

func TestReloadSwapsLiveRulesKeepsOldOnError(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := adminConfig(t, up.addr)
	r := startRelayAt(t, cfg, c)
	file := filepath.Join(t.TempDir(), "kadenz.yaml")
	load := func() (*config.Config, error) { return config.Load(file) }
	base := "listen: 127.0.0.1:0\ndata_dir: " + cfg.DataDir + "\nhostname: kadenz.test\n" +
		"admin:\n  listen: 127.0.0.1:0\n" +
		"intake:\n  read_timeout: 10s\n  write_timeout: 10s\n" +
		"delivery:\n  upstream: " + up.addr + "\n  tls: none\n  retry_initial: 20ms\n  retry_max: 100ms\n"

	// A bad file: two problems, both reported with file and line; nothing changes.
	os.WriteFile(file, []byte(base+"governor:\n  mode: loud\n  strictness: -1\n"), 0o600)
	if err := r.ReloadWith(load); err == nil {
		t.Fatal("reload of a bad file succeeded")
	}
	var st api.ReloadStatus
	adminJSON(t, r, http.MethodGet, "/v1/config/status", nil, &st)
	if st.OK || len(st.Errors) != 2 || !strings.HasPrefix(st.Errors[0], file+":15: governor.mode") {
		t.Errorf("status after a bad file: %+v", st)
	}
	if r.config().Governor.Mode != config.ModeEnforce || r.engine.Rules().Governor().Mode != config.ModeEnforce {
		t.Errorf("a bad file changed the mode")
	}
	m := scrape(t, r)
	if value(m, "kadenz_config_reload_total", "result", "error") != 1 {
		t.Errorf("failed reload not counted")
	}

	// A good file: shadow mode, a token, a new hostname (needs a restart).
	good := strings.Replace(base, "kadenz.test", "other.test", 1)
	good = strings.Replace(good, "admin:\n  listen: 127.0.0.1:0\n", "admin:\n  listen: 127.0.0.1:0\n  token: s3cret\n", 1)
	good += "governor:\n  mode: shadow\n  caps:\n    per_day: 7\n"
	os.WriteFile(file, []byte(good), 0o600)
	step(t, r, c, time.Minute)
	if err := r.ReloadWith(load); err != nil {
		t.Fatalf("reload of a good file: %v", err)
	}
	if code, _ := adminCall(t, r, http.MethodGet, "/v1/config/status", "", nil); code != http.StatusUnauthorized {
		t.Errorf("without the new token: %d, want 401", code)
	}
	// The profiler sits behind the same token.
	if code, _ := adminCall(t, r, http.MethodGet, "/debug/pprof/goroutine?debug=1", "", nil); code != http.StatusUnauthorized {
		t.Errorf("profiler without the token: %d, want 401", code)
	}
	if code, out := adminCall(t, r, http.MethodGet, "/debug/pprof/goroutine?debug=1", "s3cret", nil); code != http.StatusOK ||
		!strings.Contains(string(out), "goroutine profile") {
		t.Errorf("profiler with the token: %d %.80q", code, out)
	}
	code, out := adminCall(t, r, http.MethodGet, "/v1/config/status", "s3cret", nil)
	st = api.ReloadStatus{}
	json.Unmarshal(out, &st)
	if code != http.StatusOK || !st.OK || len(st.Errors) != 0 || !slices.Equal(st.RestartNeeded, []string{"hostname"}) ||
		!st.LoadedAt.Equal(c.Now()) {
		t.Errorf("status after a good file: %d %+v", code, st)
	}
	ru := r.engine.Rules().Governor()
	if ru.Mode != config.ModeShadow || ru.Caps.PerDay != 7 || r.config().Hostname != "kadenz.test" {
		t.Errorf("after reload: mode %s, per_day %d, hostname %s", ru.Mode, ru.Caps.PerDay, r.config().Hostname)
	}

	// The new mode governs the next decision: shadow sends at once.
	if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test"}, marketing("Winter boots", "")); err != nil {
		t.Fatal(err)
	}
	step(t, r, c, 5*time.Minute)
	waitFor(t, "the shadow release", func() bool { return len(up.messages()) == 1 })
	env := envelopeOf(t, r.DB(), "ann@example.test", 0)
	if recs := decisionsOf(t, r.DB(), env.ID); len(recs) != 1 || recs[0].Mode != config.ModeShadow {
		t.Errorf("decision after reload: %+v", recs)
	}
}

// scanFor opens a closed database file and returns every bucket/key/value
// in which needle occurs, in any case.
func scanFor(t *testing.T, path, needle string) []string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	needle = strings.ToLower(needle)
	var hits []string
	buckets := 0
	var walk func(name string, b *bolt.Bucket)
	walk = func(name string, b *bolt.Bucket) {
		buckets++
		b.ForEach(func(k, v []byte) error {
			if v == nil && b.Bucket(k) != nil {
				walk(name+"/"+string(k), b.Bucket(k))
				return nil
			}
			if bytes.Contains(bytes.ToLower(k), []byte(needle)) || bytes.Contains(bytes.ToLower(v), []byte(needle)) {
				hits = append(hits, name+": "+string(k))
			}
			return nil
		})
	}
	db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			walk(string(name), b)
			return nil
		})
	})
	if buckets < 12 {
		t.Fatalf("scanned only %d buckets", buckets)
	}
	return hits
}

func TestForgetLeavesNothingOfTheRecipient(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := adminConfig(t, up.addr)
	r, err := New(Options{Config: cfg, Now: c.Now, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	cl := dial(t, r)
	// Dora gets: transactional mail (delivered), a marketing message that
	// the engine decides on, another under a different spelling of her
	// address, shared with Eve whose copy is still held.
	if err := submit(t, cl, "shop@shop.test", []string{"dora@example.test"}, transactional("dora@example.test", "receipt-dora")); err != nil {
		t.Fatal(err)
	}
	c.advance(time.Second) // message IDs sort by (virtual) time: keep this order
	if err := submit(t, cl, "news@shop.test", []string{"dora@example.test"}, strings.ReplaceAll(marketing("Winter boots", ""), "ann@", "dora@")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the receipt", func() bool { return len(up.messages()) == 1 })
	step(t, r, c, 5*time.Minute)
	waitFor(t, "a decision for dora", func() bool {
		return envelopeOf(t, r.DB(), "dora@example.test", 1).State != store.StateHeld
	})
	shared := strings.ReplaceAll(marketing("Summer sandals", "X-Kadenz-Campaign: summer\r\n"), "To: ann@example.test", "To: undisclosed-recipients:;")
	if err := submit(t, cl, "news@shop.test", []string{"Dora@Example.TEST", "eve@example.test"}, shared); err != nil {
		t.Fatal(err)
	}
	// She unsubscribed.
	err = r.DB().UpdateProfile("dora@example.test", func(old []byte) ([]byte, error) {
		return scoring.UpdateStored(old, func(p *scoring.Profile) { p.Unsubscribed = c.Now() })
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the release to dora, if any, to finish", func() bool {
		s := envelopeOf(t, r.DB(), "dora@example.test", 1).State
		return s == store.StateHeld || s.Final()
	})
	// Her envelope IDs, and the IDs of the messages only she received,
	// key her decision records and the Message-ID index: none may remain.
	ids := scanDuringRun(t, r)
	if len(ids) != 3 {
		t.Fatalf("dora has %d envelopes before the erasure, want 3", len(ids))
	}
	ids = append(ids, strings.TrimSuffix(ids[0], "-1"), strings.TrimSuffix(ids[1], "-1"))

	var res api.ForgetResult
	adminJSON(t, r, http.MethodPost, "/v1/forget", map[string]string{"address": "DORA@example.test"}, &res)
	e := res.Erased
	if e.Envelopes != 3 || e.Kept != 0 || e.Profiles != 1 || !e.Tombstone || e.SharedBodies != 1 || e.HeaderIDs < 1 || e.Bodies < 1 {
		t.Errorf("erasure report %+v", e)
	}
	if code, _ := adminCall(t, r, http.MethodPost, "/v1/forget", "", map[string]string{"address": "not an address"}); code != http.StatusBadRequest {
		t.Errorf("forget of a non-address: %d, want 400", code)
	}
	if code, _ := adminCall(t, r, http.MethodGet, "/v1/profiles/dora@example.test", "", nil); code != http.StatusNotFound {
		t.Errorf("profile after forget: %d, want 404", code)
	}
	cl.Quit() // an open session would hold shutdown to its deadline
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.DataDir, "kadenz.db")
	if hits := scanFor(t, path, "dora@example.test"); len(hits) > 0 {
		t.Errorf("after forget, the address remains in: %v", hits)
	}
	for _, id := range ids {
		if hits := scanFor(t, path, id); len(hits) > 0 {
			t.Errorf("after forget, %s remains in: %v", id, hits)
		}
	}
	if hits := scanFor(t, path, "eve@example.test"); len(hits) == 0 {
		t.Errorf("eve's mail was erased too")
	}

	// Restarted, the relay still keeps her out of marketing: the tombstone.
	r2 := startRelayAt(t, cfg, c)
	if err := submit(t, dial(t, r2), "news@shop.test", []string{"dora@example.test"}, marketing("Spring coats", "")); err != nil {
		t.Fatal(err)
	}
	step(t, r2, c, 5*time.Minute)
	waitFor(t, "the new message to be decided", func() bool {
		return envelopeOf(t, r2.DB(), "dora@example.test", 0).State == store.StateSuppressed
	})
	env := envelopeOf(t, r2.DB(), "dora@example.test", 0)
	if recs := decisionsOf(t, r2.DB(), env.ID); len(recs) != 1 || !slices.Contains(recs[0].Reasons, "unsubscribed") {
		t.Errorf("decision for a forgotten, unsubscribed address: %+v", recs)
	}
}

// scanDuringRun checks the scan finds the address while the relay runs
// (through the store's own view), so an empty scan later means erased.
func scanDuringRun(t *testing.T, r *Relay) []string {
	t.Helper()
	var hits []string
	r.DB().Records(func(rec store.EnvelopeRecord) bool {
		if strings.EqualFold(rec.Envelope.To, "dora@example.test") {
			hits = append(hits, rec.Envelope.ID)
		}
		return true
	})
	return hits
}

func TestRetentionPurgesOnlyAfterThePeriod(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := adminConfig(t, up.addr)
	r := startRelayAt(t, cfg, c)
	if err := submit(t, dial(t, r), "shop@shop.test", []string{"ann@example.test"}, transactional("ann@example.test", "receipt")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery", func() bool { return firstEnvelope(t, r.DB()).State == store.StateDelivered })
	env := firstEnvelope(t, r.DB())
	// A decision record for it, as the engine would write for marketing.
	r.DB().ApplyDecisions(store.Decided{Recipient: env.To, Records: map[string][]byte{env.ID: []byte(`{"action":"release"}`)}})

	for _, c := range []struct {
		after                   time.Duration
		bodies, decisions       int
		bodyPurged, hasDecision bool
	}{
		{cfg.Retention.Bodies - time.Minute, 0, 0, false, true},
		{cfg.Retention.Bodies + time.Minute, 1, 0, true, true},
		{cfg.Retention.Decisions - time.Minute, 0, 0, true, true},
		{cfg.Retention.Decisions + time.Minute, 0, 1, true, false},
	} {
		p, err := r.retentionSweep(env.Updated.Add(c.after))
		if err != nil {
			t.Fatal(err)
		}
		if p.Bodies != c.bodies || p.Decisions != c.decisions {
			t.Errorf("sweep at +%v purged %+v, want %d bodies, %d decisions", c.after, p, c.bodies, c.decisions)
		}
		var x api.Explanation
		adminJSON(t, r, http.MethodGet, "/v1/explain/"+env.ID, nil, &x)
		if x.BodyPurged != c.bodyPurged || (len(x.Envelopes[0].Decisions) > 0) != c.hasDecision {
			t.Errorf("explain at +%v: body purged %v, decisions %s", c.after, x.BodyPurged, x.Envelopes[0].Decisions)
		}
	}
}

func TestProfileStatsAndCampaignReport(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := adminConfig(t, up.addr)
	r := startRelayAt(t, cfg, c)
	unsubscribe(t, r.DB(), "bob@example.test")
	cl := dial(t, r)
	summer := marketing("Summer sandals", "X-Kadenz-Campaign: summer\r\n")
	if err := submit(t, cl, "news@shop.test", []string{"ann@example.test", "bob@example.test"}, summer); err != nil {
		t.Fatal(err)
	}
	c.advance(time.Second) // message IDs sort by (virtual) time: keep this order
	if err := submit(t, cl, "shop@shop.test", []string{"ann@example.test"}, transactional("ann@example.test", "r1")); err != nil {
		t.Fatal(err)
	}
	step(t, r, c, 5*time.Minute)
	waitFor(t, "both decided", func() bool {
		return envelopeOf(t, r.DB(), "ann@example.test", 0).State != store.StateHeld &&
			envelopeOf(t, r.DB(), "bob@example.test", 0).State == store.StateSuppressed
	})

	var pv api.ProfileView
	adminJSON(t, r, http.MethodGet, "/v1/profiles/ann@example.test", nil, &pv)
	if pv.Total != 2 || len(pv.Envelopes) != 2 || pv.Suppressed || len(pv.Profile) == 0 || len(pv.Envelopes[1].Decisions) == 0 {
		t.Errorf("ann's profile view: total %d, %d envelopes, suppressed %v, profile %s", pv.Total, len(pv.Envelopes), pv.Suppressed, pv.Profile)
	}
	adminJSON(t, r, http.MethodGet, "/v1/profiles/bob@example.test", nil, &pv)
	if !pv.Suppressed {
		t.Errorf("bob unsubscribed but the profile view says not suppressed")
	}
	if code, _ := adminCall(t, r, http.MethodGet, "/v1/profiles/nobody", "", nil); code != http.StatusBadRequest {
		t.Errorf("profile of a non-address: %d", code)
	}

	var st api.Stats
	adminJSON(t, r, http.MethodGet, "/v1/stats?last=1h", nil, &st)
	if st.Messages != 2 || st.Envelopes != 3 || st.ByClass["marketing"] != 1 || st.ByClass["transactional"] != 1 ||
		st.ByState["suppressed"] != 1 || st.ByReason["unsubscribed"] != 1 {
		t.Errorf("stats %+v", st)
	}
	adminJSON(t, r, http.MethodGet, "/v1/stats?since=2026-11-24T00:00:00Z&until=2026-11-25T00:00:00Z", nil, &st)
	if st.Envelopes != 0 {
		t.Errorf("stats of a day without mail: %d envelopes", st.Envelopes)
	}
	if code, _ := adminCall(t, r, http.MethodGet, "/v1/stats?last=yesterday", "", nil); code != http.StatusBadRequest {
		t.Errorf("stats with a bad period: %d", code)
	}

	var rep api.CampaignReport
	adminJSON(t, r, http.MethodGet, "/v1/campaigns/summer/report", nil, &rep)
	if rep.Messages != 1 || rep.Envelopes != 2 || rep.Governed.Envelopes != 2 || rep.Governed.Suppressed != 1 ||
		rep.Governed.Released+rep.Governed.Held != 1 || rep.SuppressedBy["unsubscribed"] != 1 || rep.Holdout.Envelopes != 0 {
		t.Errorf("campaign report %+v", rep)
	}
	if code, _ := adminCall(t, r, http.MethodGet, "/v1/campaigns/winter/report", "", nil); code != http.StatusNotFound {
		t.Errorf("report of an unknown campaign: %d", code)
	}

	// A click on ann's released mail shows in the campaign's engagement.
	ann := envelopeOf(t, r.DB(), "ann@example.test", 0)
	if ann.State == store.StateHeld || ann.State == store.StateSuppressed {
		t.Fatalf("ann's summer mail is %s; the engagement check needs it released", ann.State)
	}
	var applied map[string]int
	adminJSON(t, r, http.MethodPost, "/v1/events", map[string]string{"kind": "click", "envelope_id": ann.ID}, &applied)
	adminJSON(t, r, http.MethodGet, "/v1/campaigns/summer/report", nil, &rep)
	if e := rep.Engagement; e.Sampled != 1 || e.Remembered != 1 || e.Clicked != 1 || e.Opened != 1 || e.Replied != 0 {
		t.Errorf("campaign engagement after a click: %+v", e)
	}

	// Mail the smarthost refused for good is failed, not released.
	waitFor(t, "ann's summer mail delivered", func() bool {
		return envelopeOf(t, r.DB(), "ann@example.test", 0).State == store.StateDelivered
	})
	ann = envelopeOf(t, r.DB(), "ann@example.test", 0)
	ann.State = store.StateFailed
	if err := r.DB().Update(ann); err != nil {
		t.Fatal(err)
	}
	adminJSON(t, r, http.MethodGet, "/v1/campaigns/summer/report", nil, &rep)
	if g := rep.Governed; g.Released != 0 || g.Failed != 1 || g.Delivered != 0 {
		t.Errorf("campaign report with ann's mail refused: %+v; want 0 released, 1 failed", g)
	}
}
