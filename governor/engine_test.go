package governor

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"kadenz/config"
	"kadenz/governor/admin/api"
	"kadenz/governor/engine"
	"kadenz/governor/intake"
	"kadenz/scoring"
	"kadenz/store"
)

// clock is virtual time for the relay under test: it moves only when the
// test says so, and the test then kicks the engine and the queue.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Monday 10:00 UTC: outside the default quiet hours (21:00-08:00).
var monday10 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func startRelayAt(t *testing.T, cfg *config.Config, c *clock) *Relay {
	t.Helper()
	return startRelayWith(t, Options{Config: cfg, Now: c.Now})
}

// step moves virtual time on and lets the relay's loops act.
func step(t *testing.T, r *Relay, c *clock, d time.Duration) {
	t.Helper()
	c.advance(d)
	r.timeMoved()
}

func marketing(subject, extra string) string {
	return "From: news@shop.test\r\nTo: ann@example.test\r\nSubject: " + subject + "\r\n" +
		"List-Unsubscribe: <mailto:unsubscribe@shop.test>\r\nX-Kadenz-Topics: shoes\r\n" + extra +
		"Message-ID: <" + strings.ReplaceAll(strings.ToLower(subject), " ", "-") + "@shop.test>\r\n\r\n" +
		"Our " + subject + " collection is here, with new colours and sizes for every season.\r\n"
}

func envelopeOf(t *testing.T, db store.Store, to string, n int) store.Envelope {
	t.Helper()
	var found []store.Envelope
	db.Envelopes(func(e store.Envelope) bool {
		if e.To == to {
			found = append(found, e)
		}
		return true
	})
	if len(found) <= n {
		t.Fatalf("no envelope %d for %s (have %d)", n, to, len(found))
	}
	return found[n]
}

func decisionsOf(t *testing.T, db store.Store, envelopeID string) []engine.Record {
	t.Helper()
	raw, err := db.Decisions(envelopeID)
	if err != nil {
		t.Fatal(err)
	}
	var recs []engine.Record
	if raw != nil {
		if err := json.Unmarshal(raw, &recs); err != nil {
			t.Fatal(err)
		}
	}
	return recs
}

func governedConfig(t *testing.T, upstreamAddr string) *config.Config {
	cfg := testConfig(t, upstreamAddr)
	cfg.Governor.HoldWindow = 5 * time.Minute
	return cfg
}

func TestClassify(t *testing.T) {
	g := &config.Default().Governor
	g.SenderRules = []config.SenderRule{
		{Sender: "*@news.shop.test", Class: config.ClassMarketing},
		{Sender: "dev-bounces@lists.shop.test", Header: "Subject", Value: "confirm *", Class: config.ClassTransactional},
		{Header: "X-Mailer", Value: "listmonk*", Class: config.ClassMarketing},
	}
	for _, tc := range []struct {
		header, sender, want string
	}{
		{"Subject: receipt\r\n", "shop@shop.test", config.ClassTransactional},
		{"List-Unsubscribe: <mailto:u@shop.test>\r\n", "shop@shop.test", config.ClassMarketing},
		{"List-Id: <offers.shop.test>\r\n", "shop@shop.test", config.ClassMarketing},
		{"Precedence: Bulk\r\n", "shop@shop.test", config.ClassMarketing},
		{"Precedence: first-class\r\n", "shop@shop.test", config.ClassTransactional},
		{"X-Kadenz-Class: transactional\r\nList-Unsubscribe: <mailto:u@shop.test>\r\n", "shop@shop.test", config.ClassTransactional},
		{"X-Kadenz-Class: Marketing\r\n", "shop@shop.test", config.ClassMarketing},
		{"Subject: hi\r\n", "Deals@News.Shop.Test", config.ClassMarketing},
		// A header rule: the list's confirmation passes, its posts are governed.
		{"List-Id: <dev.lists.shop.test>\r\nSubject: Confirm abc123\r\n", "dev-bounces@lists.shop.test", config.ClassTransactional},
		{"List-Id: <dev.lists.shop.test>\r\nSubject: [dev] release notes\r\n", "dev-bounces@lists.shop.test", config.ClassMarketing},
		{"List-Id: <dev.lists.shop.test>\r\nSubject: Confirm abc123\r\n", "other@shop.test", config.ClassMarketing},
		{"X-Mailer: listmonk 4.1\r\n", "shop@shop.test", config.ClassMarketing},
		// Mailman 2's administrative mail, without any rule.
		{"List-Id: <dev.lists.shop.test>\r\nPrecedence: bulk\r\nX-List-Administrivia: yes\r\n", "dev-bounces@lists.shop.test", config.ClassTransactional},
	} {
		got, reason := classify(readHeader([]byte(tc.header+"\r\nbody\r\n")), tc.sender, g)
		if got != tc.want || reason == "" {
			t.Errorf("%q from %s: %s (%s), want %s", tc.header, tc.sender, got, reason, tc.want)
		}
	}
	if got, _ := classify(nil, "x@y.test", g); got != config.ClassTransactional {
		t.Errorf("unreadable header: %s, want transactional (fail open)", got)
	}
}

func TestStripKadenzHeaders(t *testing.T) {
	in := "X-Kadenz-Topics: shoes,\r\n  boots\r\nSubject: hi\r\nx-kadenz-class: marketing\r\n\r\nX-Kadenz-Body: stays\r\n"
	if got, want := string(stripKadenzHeaders([]byte(in))), "Subject: hi\r\n\r\nX-Kadenz-Body: stays\r\n"; got != want {
		t.Errorf("strip:\n got %q\nwant %q", got, want)
	}
	signed := "DKIM-Signature: v=1; a=rsa-sha256; d=shop.test; h=from:subject:\r\n\tx-kadenz-topics; b=abc\r\nX-Kadenz-Topics: shoes\r\n\r\nbody\r\n"
	if got := string(stripKadenzHeaders([]byte(signed))); got != signed {
		t.Errorf("a DKIM-signed X-Kadenz header was removed: %q", got)
	}
	unsigned := "DKIM-Signature: v=1; d=shop.test; h=from:subject; b=abc\r\nX-Kadenz-Topics: shoes\r\n\r\nbody\r\n"
	if got := string(stripKadenzHeaders([]byte(unsigned))); strings.Contains(got, "X-Kadenz") {
		t.Errorf("an unsigned X-Kadenz header was kept: %q", got)
	}
}

func TestTransactionalIsNeverHeld(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	r := startRelayAt(t, governedConfig(t, up.addr), c)
	msg := "X-Kadenz-Class: transactional\r\nList-Unsubscribe: <mailto:u@shop.test>\r\nSubject: Your receipt\r\n\r\nThanks.\r\n"
	if err := submit(t, dial(t, r), "shop@shop.test", []string{"ann@example.test"}, msg); err != nil {
		t.Fatal(err)
	}
	// Virtual time does not move: a transactional message needs none.
	waitFor(t, "immediate delivery", func() bool { return len(up.messages()) == 1 })
	if got := string(up.messages()[0].data); strings.Contains(got, "X-Kadenz") || !strings.Contains(got, "List-Unsubscribe") {
		t.Errorf("delivered message should lose X-Kadenz-* and keep the rest:\n%s", got)
	}
}

func TestMarketingHeldThenReleasedOutsideQuietHours(t *testing.T) {
	up := startUpstream(t, nil)
	// The hold window ends at 21:03, inside quiet hours (21:00-08:00): the
	// release must wait for the morning.
	c := &clock{t: time.Date(2026, 11, 23, 20, 58, 0, 0, time.UTC)}
	cfg := governedConfig(t, up.addr)
	r := startRelayAt(t, cfg, c)
	if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test"}, marketing("Winter boots", "")); err != nil {
		t.Fatal(err)
	}
	env := envelopeOf(t, r.DB(), "ann@example.test", 0)
	if env.State != store.StateHeld || !env.Due.Equal(c.Now().Add(cfg.Governor.HoldWindow)) {
		t.Fatalf("marketing envelope after accept: %s due %v; want held for the hold window", env.State, env.Due)
	}
	waitCaughtUp(t, r)
	if n := len(up.messages()); n != 0 {
		t.Fatalf("%d messages delivered during the hold window", n)
	}

	// Walk virtual time forward until the message is out, at most 3 days.
	for i := 0; i < 72*4 && len(up.messages()) == 0; i++ {
		step(t, r, c, 15*time.Minute)
		waitCaughtUp(t, r)
	}
	waitFor(t, "release", func() bool { return len(up.messages()) == 1 })
	recs := decisionsOf(t, r.DB(), env.ID)
	last := recs[len(recs)-1]
	if last.Action != "release" || last.Explanation == "" || len(last.Reasons) == 0 || last.Numbers == nil {
		t.Fatalf("last decision %+v", last)
	}
	if morning := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC); last.At.Before(morning) {
		t.Errorf("released at %v, inside quiet hours 21:00-08:00", last.At)
	}
	if h := last.At.Hour(); h >= 21 || h < 8 {
		t.Errorf("released at %v, inside quiet hours 21:00-08:00", last.At)
	}
	if got := string(up.messages()[0].data); strings.Contains(got, "X-Kadenz-Topics") {
		t.Errorf("X-Kadenz-Topics reached the recipient")
	}
	prof, _ := r.DB().Profile("ann@example.test")
	if p, err := scoring.DecodeProfile(prof); err != nil || len(p.History) != 1 {
		t.Errorf("profile after one release: %+v %v", p, err)
	}
}

func unsubscribe(t *testing.T, db store.Store, rcpt string) {
	t.Helper()
	p, _ := json.Marshal(scoring.Profile{Unsubscribed: monday10.Add(-24 * time.Hour)})
	if err := db.PutProfile(rcpt, p); err != nil {
		t.Fatal(err)
	}
}

func TestUnsubscribedRecipientSuppressed(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	r := startRelayAt(t, governedConfig(t, up.addr), c)
	unsubscribe(t, r.DB(), "ann@example.test")
	if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test"}, marketing("Winter boots", "")); err != nil {
		t.Fatal(err)
	}
	step(t, r, c, 5*time.Minute)
	var env store.Envelope
	waitFor(t, "suppression", func() bool {
		env = envelopeOf(t, r.DB(), "ann@example.test", 0)
		return env.State == store.StateSuppressed
	})
	recs := decisionsOf(t, r.DB(), env.ID)
	if len(recs) != 1 || !slices.Contains(recs[0].Reasons, "unsubscribed") {
		t.Errorf("decision records %+v; want one suppress with reason unsubscribed", recs)
	}
	if n := len(up.messages()); n != 0 {
		t.Errorf("%d messages delivered to an unsubscribed recipient", n)
	}
}

func TestShadowModeSendsEverythingAndRecordsTheDecision(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := governedConfig(t, up.addr)
	cfg.Governor.Mode = config.ModeShadow
	r := startRelayAt(t, cfg, c)
	unsubscribe(t, r.DB(), "ann@example.test")
	if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test"}, marketing("Winter boots", "")); err != nil {
		t.Fatal(err)
	}
	step(t, r, c, 5*time.Minute)
	waitFor(t, "shadow release", func() bool { return len(up.messages()) == 1 })
	recs := decisionsOf(t, r.DB(), envelopeOf(t, r.DB(), "ann@example.test", 0).ID)
	if len(recs) != 1 || recs[0].Action != "release" || recs[0].Would != "suppress" || recs[0].Mode != config.ModeShadow {
		t.Errorf("shadow record %+v; want release, would suppress", recs)
	}
}

func TestCompetingMessagesBestWinsTheSlot(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := governedConfig(t, up.addr)
	cfg.Governor.Caps = config.Caps{PerDay: 1}
	r := startRelayAt(t, cfg, c)
	conn := dial(t, r)
	if err := submit(t, conn, "news@shop.test", []string{"ann@example.test"}, marketing("Clearance socks", "X-Kadenz-Priority: 5\r\n")); err != nil {
		t.Fatal(err)
	}
	c.advance(time.Minute) // arrives later, inside the same hold window
	if err := submit(t, conn, "news@shop.test", []string{"ann@example.test"}, marketing("Winter boots", "X-Kadenz-Priority: 95\r\n")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 96 && len(up.messages()) == 0; i++ {
		step(t, r, c, 15*time.Minute)
		waitCaughtUp(t, r)
	}
	waitFor(t, "a release", func() bool { return len(up.messages()) >= 1 })
	waitCaughtUp(t, r)
	msgs := up.messages()
	if len(msgs) != 1 || !strings.Contains(string(msgs[0].data), "Subject: Winter boots") {
		t.Fatalf("delivered %d messages; want only the priority-95 one", len(msgs))
	}
	loser := envelopeOf(t, r.DB(), "ann@example.test", 0)
	if loser.State == store.StateQueued || loser.State == store.StateDelivered {
		t.Errorf("the weaker message was released too: %s", loser.State)
	}
}

func TestHoldoutGetsEverythingUndelayedButUnsubscribeWins(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := governedConfig(t, up.addr)
	cfg.Governor.Holdout = config.Holdout{Share: 1, Salt: "test"}
	r := startRelayAt(t, cfg, c)
	unsubscribe(t, r.DB(), "gone@example.test")
	if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test", "gone@example.test"}, marketing("Winter boots", "")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "undelayed holdout delivery", func() bool { return len(up.messages()) == 1 })
	if env := envelopeOf(t, r.DB(), "ann@example.test", 0); !env.Holdout {
		t.Errorf("holdout envelope not marked: %+v", env)
	}
	if env := envelopeOf(t, r.DB(), "gone@example.test", 0); env.State != store.StateHeld {
		t.Errorf("unsubscribed holdout recipient: %s; want held for the engine to suppress", env.State)
	}
}

func TestRestartDuringHoldLosesNothing(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := governedConfig(t, up.addr)
	r, err := New(Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	c2, err := dialAddr(r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := submit(t, c2, "news@shop.test", []string{"ann@example.test"}, marketing("Winter boots", "")); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	if err := r.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	c.advance(time.Hour)
	r = startRelayAt(t, cfg, c)
	for i := 0; i < 96 && len(up.messages()) == 0; i++ {
		step(t, r, c, 15*time.Minute)
		waitCaughtUp(t, r)
	}
	waitFor(t, "release after restart", func() bool { return len(up.messages()) == 1 })
}

func TestExplainOverAdminAPI(t *testing.T) {
	c := &clock{t: monday10}
	cfg := governedConfig(t, "")
	cfg.Admin.Listen = "127.0.0.1:0"
	r := startRelayAt(t, cfg, c)
	unsubscribe(t, r.DB(), "ann@example.test")
	if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test"}, marketing("Winter boots", "")); err != nil {
		t.Fatal(err)
	}
	step(t, r, c, 5*time.Minute)
	waitFor(t, "a decision", func() bool { return envelopeOf(t, r.DB(), "ann@example.test", 0).State == store.StateSuppressed })

	for _, id := range []string{"winter-boots@shop.test", envelopeOf(t, r.DB(), "ann@example.test", 0).ID} {
		resp, err := http.Get("http://" + r.AdminAddr().String() + "/v1/explain/" + id)
		if err != nil {
			t.Fatal(err)
		}
		var x api.Explanation
		err = json.NewDecoder(resp.Body).Decode(&x)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("explain %s: %s %v", id, resp.Status, err)
		}
		if x.Message.Class != config.ClassMarketing || !strings.Contains(x.Message.ClassReason, "List-Unsubscribe") {
			t.Errorf("explain %s: class %q (%q)", id, x.Message.Class, x.Message.ClassReason)
		}
		if len(x.Envelopes) != 1 || !strings.Contains(string(x.Envelopes[0].Decisions), "unsubscribed") {
			t.Errorf("explain %s: envelopes %+v", id, x.Envelopes)
		}
	}
	resp, err := http.Get("http://" + r.AdminAddr().String() + "/v1/explain/nothing-here")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown ID: %s, want 404", resp.Status)
	}
}

// Feedback flows into decisions: after a complaint is recorded, the
// recipient's next marketing mail is suppressed; another recipient's is not.
func TestDrivenComplaintSuppressesNextMail(t *testing.T) {
	c := &clock{t: monday10}
	cfg := governedConfig(t, "")
	r := drivenRelay(t, cfg, c)
	if err := r.RecordEvent("ann@example.test", scoring.Event{Kind: scoring.EventComplaint, At: c.Now()}); err != nil {
		t.Fatal(err)
	}
	_, err := r.Submit(&intake.Submission{From: "news@shop.test", To: []string{"ann@example.test", "bob@example.test"},
		Data: []byte(marketing("Winter boots", "")), Received: c.Now()})
	if err != nil {
		t.Fatal(err)
	}
	c.advance(cfg.Governor.HoldWindow)
	if n, err := r.DecideDue(c.Now()); n != 2 || err != nil {
		t.Fatalf("DecideDue = %d, %v; want both recipients decided", n, err)
	}
	ann, bob := envelopeOf(t, r.DB(), "ann@example.test", 0), envelopeOf(t, r.DB(), "bob@example.test", 0)
	// As in production, the complaint put ann on the suppression list.
	if ann.State != store.StateSuppressed || !slices.Contains(decisionsOf(t, r.DB(), ann.ID)[0].Reasons, "suppression-list") {
		t.Errorf("complainer's mail: %s %+v", ann.State, decisionsOf(t, r.DB(), ann.ID))
	}
	if bob.State == store.StateSuppressed {
		t.Errorf("bob's mail suppressed: %+v", decisionsOf(t, r.DB(), bob.ID))
	}
}

func postClock(t *testing.T, r *Relay, body string) (*http.Response, api.ClockResponse) {
	t.Helper()
	resp, err := http.Post("http://"+r.AdminAddr().String()+"/v1/clock", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cr api.ClockResponse
	if resp.StatusCode == http.StatusOK {
		json.NewDecoder(resp.Body).Decode(&cr)
	}
	return resp, cr
}

// Virtual time through the admin API, as a black-box test or a simulation
// would use it: nothing moves until the clock is told to.
func TestVirtualClockOverAdminAPI(t *testing.T) {
	up := startUpstream(t, nil)
	cfg := governedConfig(t, up.addr)
	cfg.Admin.Listen = "127.0.0.1:0"
	r := startRelayWith(t, Options{Config: cfg, Clock: NewVirtualClock(monday10)})

	if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test"}, marketing("Winter boots", "")); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, r)
	if env := envelopeOf(t, r.DB(), "ann@example.test", 0); env.State != store.StateHeld {
		t.Fatalf("before the clock moved: %s, want held", env.State)
	}
	if resp, cr := postClock(t, r, `{"advance": "10m"}`); resp.StatusCode != 200 || !cr.Virtual || !cr.Now.Equal(monday10.Add(10*time.Minute)) {
		t.Fatalf("advance: %s %+v", resp.Status, cr)
	}
	// The clock's answer says when the relay has caught up with the step:
	// then, and not before, the release has been delivered.
	waitFor(t, "GET /v1/clock to say caught_up", func() bool {
		code, body := adminDo(t, r, http.MethodGet, "/v1/clock", "", "")
		var cr api.ClockResponse
		if code != http.StatusOK || json.Unmarshal([]byte(body), &cr) != nil {
			t.Fatalf("GET /v1/clock: %d %s", code, body)
		}
		return cr.CaughtUp
	})
	if n := len(up.messages()); n != 1 {
		t.Fatalf("caught up after the clock moved with %d messages delivered, want the release", n)
	}

	if resp, _ := postClock(t, r, `{"time": "2026-11-23T09:00:00Z"}`); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("moving back in time: %s, want 400", resp.Status)
	}
	if resp, _ := postClock(t, r, `{"advance": "-1h"}`); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("negative advance: %s, want 400", resp.Status)
	}
	if resp, cr := postClock(t, r, `{"time": "2026-11-25T10:00:00Z"}`); resp.StatusCode != 200 || cr.Now.Day() != 25 {
		t.Errorf("absolute time: %s %+v", resp.Status, cr)
	}
}

func TestRealClockRefusesToMove(t *testing.T) {
	cfg := governedConfig(t, "")
	cfg.Admin.Listen = "127.0.0.1:0"
	r := startRelay(t, cfg)
	if resp, _ := postClock(t, r, `{"advance": "1h"}`); resp.StatusCode != http.StatusConflict {
		t.Errorf("moving a real clock: %s, want 409", resp.Status)
	}
}

// The recipient's zone comes from the latest held message that names one,
// whatever order a map would visit the messages in.
func TestLatestMessageSetsRecipientZone(t *testing.T) {
	c := &clock{t: monday10}
	cfg := governedConfig(t, "")
	r := drivenRelay(t, cfg, c)
	for _, zone := range []string{"Asia/Tokyo", "America/New_York", "Europe/Berlin"} {
		_, err := r.Submit(&intake.Submission{From: "news@shop.test", To: []string{"ann@example.test"},
			Data: []byte(marketing("Offer "+zone, "X-Kadenz-Timezone: "+zone+"\r\n")), Received: c.Now()})
		if err != nil {
			t.Fatal(err)
		}
		c.advance(time.Millisecond) // IDs, and so arrival order, follow the clock
	}
	c.advance(cfg.Governor.HoldWindow)
	if _, err := r.DecideDue(c.Now()); err != nil {
		t.Fatal(err)
	}
	raw, _ := r.DB().Profile("ann@example.test")
	if p, err := scoring.DecodeProfile(raw); err != nil || p.Timezone != "Europe/Berlin" {
		t.Errorf("profile zone %q (%v), want the latest message's Europe/Berlin", p.Timezone, err)
	}
}

// explain by Message-ID shows every transaction that carried it: a CRM
// that submits one message twice (say, to two batches of recipients) sees
// both, the latest first.
func TestExplainShowsEveryTransactionOfAMessageID(t *testing.T) {
	c := &clock{t: monday10}
	cfg := testConfig(t, "")
	cfg.Admin.Listen = "127.0.0.1:0"
	r, err := New(Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown(context.Background())
	if err := r.startAdmin(); err != nil { // the API alone: nothing else runs
		t.Fatal(err)
	}
	msg := "Message-ID: <twice@shop.test>\r\nSubject: receipt\r\n\r\nthanks\r\n"
	var ids []string
	for _, to := range []string{"ann@example.test", "bob@example.test"} {
		id, err := r.Submit(&intake.Submission{From: "crm@shop.test", To: []string{to}, Data: []byte(msg), Received: c.Now()})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		c.advance(time.Second)
	}
	var x api.Explanation
	adminJSON(t, r, http.MethodGet, "/v1/explain/"+url.PathEscape("<twice@shop.test>"), nil, &x)
	if x.Message.ID != ids[1] || len(x.Also) != 1 || x.Also[0].Message.ID != ids[0] {
		t.Fatalf("explain: message %s, also %d; want %s, then %s", x.Message.ID, len(x.Also), ids[1], ids[0])
	}
	if x.Envelopes[0].To != "bob@example.test" || x.Also[0].Envelopes[0].To != "ann@example.test" {
		t.Errorf("envelopes: %s / %s", x.Envelopes[0].To, x.Also[0].Envelopes[0].To)
	}
}
