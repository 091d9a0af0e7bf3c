package governor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kadenz/config"
	"kadenz/governor/admin/api"
	"kadenz/store"
)

// adminRelay starts a governed relay with the admin API and a token.
func adminRelay(t *testing.T, c *clock) *Relay {
	t.Helper()
	cfg := governedConfig(t, "")
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Admin.Token = "s3cret"
	return startRelayAt(t, cfg, c)
}

func adminDo(t *testing.T, r *Relay, method, path, contentType, body string) (int, string) {
	t.Helper()
	code, out := adminRequest(t, r, method, path, "s3cret", contentType, strings.NewReader(body))
	return code, string(out)
}

func postEvents(t *testing.T, r *Relay, body string) (int, string) {
	t.Helper()
	return adminDo(t, r, http.MethodPost, "/v1/events", "application/json", body)
}

func TestEventsGoodAndDuplicate(t *testing.T) {
	c := &clock{t: monday10}
	r := adminRelay(t, c)
	if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test"}, marketing("Winter boots", "")); err != nil {
		t.Fatal(err)
	}
	env := envelopeOf(t, r.DB(), "ann@example.test", 0)
	batch := fmt.Sprintf(`{"events": [
		{"id": "e1", "kind": "open", "envelope_id": %q, "timestamp": "2026-11-23T10:00:00Z"},
		{"id": "e2", "kind": "click", "message_id": "<winter-boots@shop.test>", "url": "https://shop.test/boots"},
		{"id": "e3", "kind": "open", "recipient": "bob@example.test", "topic": "Sandals"}
	]}`, env.ID)
	code, body := postEvents(t, r, batch)
	if code != 200 || !strings.Contains(body, `"applied":3`) || !strings.Contains(body, `"duplicates":0`) {
		t.Fatalf("first post: %d %s", code, body)
	}
	ann := profileOf(t, r.DB(), "ann@example.test")
	if ann.All.Opens != 1 || ann.All.Clicks != 1 {
		t.Errorf("ann's counts %+v, want one open and one click", ann.All)
	}
	if bob := profileOf(t, r.DB(), "bob@example.test"); bob.Topics["sandals"].Opens != 1 {
		t.Errorf("bob's topics %+v", bob.Topics)
	}
	// The same batch again: acknowledged, not applied.
	code, body = postEvents(t, r, batch)
	if code != 200 || !strings.Contains(body, `"applied":0`) || !strings.Contains(body, `"duplicates":3`) {
		t.Fatalf("repeat: %d %s", code, body)
	}
	if again := profileOf(t, r.DB(), "ann@example.test"); again.All != ann.All {
		t.Errorf("a duplicate changed the profile: %+v -> %+v", ann.All, again.All)
	}
	// A single event, no ID, an unsubscribe: ann's held mail... is none
	// (open, click); the address is listed.
	code, body = postEvents(t, r, `{"kind": "unsubscribe", "recipient": "ann@example.test"}`)
	if code != 200 || !strings.Contains(body, `"applied":1`) {
		t.Fatalf("single event: %d %s", code, body)
	}
	if s, listed, _ := r.DB().SuppressionOf("ann@example.test"); !listed || s.Reason != "unsubscribed" || s.Source != "events" {
		t.Errorf("suppression after an unsubscribe event: %+v %v", s, listed)
	}
	if e := envelopeOf(t, r.DB(), "ann@example.test", 0); e.State != store.StateSuppressed {
		t.Errorf("ann's held mail after unsubscribe: %s", e.State)
	}
}

func TestEventsMalformed(t *testing.T) {
	c := &clock{t: monday10}
	r := adminRelay(t, c)
	if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test", "bob@example.test"}, marketing("Winter boots", "")); err != nil {
		t.Fatal(err)
	}
	good := `{"kind": "open", "recipient": "ann@example.test"}`
	for _, tc := range []struct {
		name, body string
		index      int
		field, msg string
	}{
		{"bad JSON", `{"kind": "open",`, -1, "", "not a JSON object"},
		{"not an object", `[1,2]`, -1, "", "not a JSON object"},
		{"unknown kind", `{"events": [` + good + `, {"kind": "view", "recipient": "a@b.test"}]}`, 1, "kind", `"view" is not one of`},
		{"missing target", `{"kind": "click"}`, 0, "envelope_id", "give envelope_id, message_id or recipient"},
		{"bad timestamp", `{"events": [` + good + `, ` + good + `, {"kind": "open", "recipient": "a@b.test", "timestamp": "yesterday"}]}`, 2, "timestamp", "not RFC 3339"},
		{"future timestamp", `{"kind": "open", "recipient": "a@b.test", "timestamp": "2027-01-01T00:00:00Z"}`, 0, "timestamp", "in the future"},
		{"unknown envelope", `{"kind": "open", "envelope_id": "06h0fp910289ekpxbxv0-9"}`, 0, "envelope_id", "no envelope"},
		{"unknown message", `{"kind": "open", "message_id": "nope@x.test"}`, 0, "message_id", "no message"},
		{"ambiguous message", `{"kind": "open", "message_id": "winter-boots@shop.test"}`, 0, "recipient", "2 recipients"},
		{"unknown field", `{"kind": "open", "recipient": "a@b.test", "colour": "red"}`, 0, "", "unknown field"},
		{"bad address", `{"kind": "open", "recipient": "nobody"}`, 0, "recipient", "is not an email address"},
		{"bounce type", `{"kind": "bounce", "recipient": "a@b.test", "bounce": "medium"}`, 0, "bounce", "hard or soft"},
		{"empty batch", `{"events": []}`, -1, "events", "1 to 1000"},
		{"batch and more", `{"events": [` + good + `], "kind": "open"}`, -1, "", "nothing else"},
	} {
		code, body := postEvents(t, r, tc.body)
		var e api.EventError
		if err := json.Unmarshal([]byte(body), &e); err != nil || code != 400 || e.Index != tc.index || e.Field != tc.field || !strings.Contains(e.Error, tc.msg) {
			t.Errorf("%s: %d %s; want 400 at index %d field %q saying %q", tc.name, code, body, tc.index, tc.field, tc.msg)
		}
	}
	// Nothing of a refused batch was applied: the good events before the
	// bad one left no trace.
	if p, _ := r.DB().Profile("ann@example.test"); p != nil {
		t.Errorf("a refused batch changed ann's profile: %s", p)
	}
	big := `{"events": [` + strings.TrimSuffix(strings.Repeat(good+",", 1000+1), ",") + `]}`
	if code, body := postEvents(t, r, big); code != 400 || !strings.Contains(body, "1 to 1000") {
		t.Errorf("oversized batch: %d %s", code, body)
	}
	// No token, no entry.
	resp, err := http.Post("http://"+r.AdminAddr().String()+"/v1/events", "application/json", strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a token: %s", resp.Status)
	}
}

// A batch is checked whole before it is answered (TestEventsMalformed); once
// answered it is in the event journal, and an event that then cannot be
// applied (its recipient's stored profile is damaged) is dropped with a log
// line after a few tries, without holding back the events beside it.
func TestEventsAnEventThatCannotApplyIsDropped(t *testing.T) {
	c := &clock{t: monday10}
	r := adminRelay(t, c)
	if err := r.DB().PutProfile("broken@example.test", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	batch := `{"events": [
		{"id": "a1", "kind": "click", "recipient": "ann@example.test"},
		{"id": "a2", "kind": "complaint", "recipient": "bob@example.test"},
		{"id": "a3", "kind": "open", "recipient": "broken@example.test"}]}`
	code, body := postEvents(t, r, batch)
	if code != 200 || !strings.Contains(body, `"applied":3`) {
		t.Fatalf("batch with an event that will fail: %d %s", code, body)
	}
	db := r.DB() // applies the journal
	if p := profileOf(t, db, "ann@example.test"); p.All.Clicks != 1 {
		t.Errorf("ann's profile: %+v", p.All)
	}
	if _, listed, _ := db.SuppressionOf("bob@example.test"); !listed {
		t.Error("bob not listed")
	}
	if p, _ := db.Profile("broken@example.test"); string(p) != "{not json" {
		t.Errorf("the damaged profile changed: %q", p)
	}
	if n := r.events.Pending(); n != 0 {
		t.Errorf("%d events still pending", n)
	}
	// The dropped event's ID was not remembered: once the profile is
	// repaired, the same batch applies it, and only it.
	db.PutProfile("broken@example.test", []byte("{}"))
	code, body = postEvents(t, r, batch)
	if code != 200 || !strings.Contains(body, `"applied":1`) || !strings.Contains(body, `"duplicates":2`) {
		t.Fatalf("the batch again: %d %s", code, body)
	}
	if p := profileOf(t, r.DB(), "broken@example.test"); p.All.Opens != 1 {
		t.Errorf("repaired profile: %+v", p.All)
	}
}

func TestSuppressionAPI(t *testing.T) {
	c := &clock{t: monday10}
	r := adminRelay(t, c)
	if code, body := adminDo(t, r, "POST", "/v1/suppressions", "application/json", `{"address": "Ann@Example.test", "reason": "asked by phone"}`); code != 200 {
		t.Fatalf("add: %d %s", code, body)
	}
	if code, _ := adminDo(t, r, "POST", "/v1/suppressions", "application/json", `{"address": "not an address"}`); code != 400 {
		t.Errorf("bad address: %d", code)
	}
	// Marketing to a listed address is suppressed with the list's reason;
	// a receipt goes through.
	if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test"}, marketing("Winter boots", "")); err != nil {
		t.Fatal(err)
	}
	step(t, r, c, 5*time.Minute)
	var env store.Envelope
	waitFor(t, "suppression", func() bool {
		env = envelopeOf(t, r.DB(), "ann@example.test", 0)
		return env.State == store.StateSuppressed
	})
	if rec := lastDecision(t, r.DB(), env.ID); !strings.Contains(rec.Explanation, "asked by phone") || rec.Reasons[0] != "suppression-list" {
		t.Errorf("decision %+v", rec)
	}

	csvIn := "address,reason\nbob@example.test,hard bounce at old ESP\n carol@example.test , \n"
	code, body := adminDo(t, r, "POST", "/v1/suppressions/import", "text/csv", csvIn)
	if code != 200 || !strings.Contains(body, `"added":2`) {
		t.Fatalf("import: %d %s", code, body)
	}
	if code, body := adminDo(t, r, "POST", "/v1/suppressions/import", "text/csv", "dave@example.test,x\nnope,y\n"); code != 400 || !strings.Contains(body, "line 2") {
		t.Errorf("bad import: %d %s", code, body)
	}
	if _, listed, _ := r.DB().SuppressionOf("dave@example.test"); listed {
		t.Error("a refused import added its good lines")
	}
	_, export := adminDo(t, r, "GET", "/v1/suppressions/export", "", "")
	for _, want := range []string{"address,reason,at,source", "ann@example.test,asked by phone,", "bob@example.test,hard bounce at old ESP,", "carol@example.test,imported,"} {
		if !strings.Contains(export, want) {
			t.Errorf("export lacks %q:\n%s", want, export)
		}
	}
	var list []store.Suppression
	_, js := adminDo(t, r, "GET", "/v1/suppressions", "", "")
	if json.Unmarshal([]byte(js), &list); len(list) != 3 {
		t.Errorf("list: %s", js)
	}
	if code, _ := adminDo(t, r, "DELETE", "/v1/suppressions/ann@example.test", "", ""); code != 200 {
		t.Errorf("rm: %d", code)
	}
	if code, _ := adminDo(t, r, "DELETE", "/v1/suppressions/ann@example.test", "", ""); code != 404 {
		t.Errorf("rm twice: %d", code)
	}
}

// BenchmarkEventsHTTP measures events applied per second over real HTTP on
// loopback, in batches of 100 with fresh IDs, against a baseline in the same
// run: the same requests to a handler that only decodes the JSON.
func BenchmarkEventsHTTP(b *testing.B) {
	const batchSize = 100
	batch := func(n int) []byte {
		var buf bytes.Buffer
		buf.WriteString(`{"events": [`)
		for i := 0; i < batchSize; i++ {
			if i > 0 {
				buf.WriteByte(',')
			}
			kind := "open"
			if i%4 == 0 {
				kind = "click"
			}
			fmt.Fprintf(&buf, `{"id": "b%d-%d", "kind": %q, "recipient": "r%d@example.test", "topic": "shoes", "timestamp": "2026-11-23T09:00:00Z"}`, n, i, kind, (n*batchSize+i)%5000)
		}
		buf.WriteString(`]}`)
		return buf.Bytes()
	}
	// run posts b.N batches from clients concurrent connections, each
	// batch with its own IDs; settle, if set, runs inside the timed part
	// after the last answer (the event journal applies what it holds, so
	// events/s counts events in the database, not only answered).
	run := func(b *testing.B, url string, clients int, settle func()) {
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		b.ResetTimer()
		for range clients {
			wg.Go(func() {
				client := &http.Client{}
				for {
					n := int(next.Add(1)) - 1
					if n >= b.N {
						return
					}
					req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(batch(n)))
					req.Header.Set("Authorization", "Bearer s3cret")
					req.Header.Set("Content-Type", "application/json")
					resp, err := client.Do(req)
					if err != nil {
						errs <- err
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						errs <- fmt.Errorf("%s", resp.Status)
						return
					}
				}
			})
		}
		wg.Wait()
		if settle != nil {
			// What the answers alone came to, before the journal's
			// applier caught up.
			b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "answered/s")
			settle()
		}
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "events/s")
	}
	for _, clients := range []int{1, 4} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) { runEventsBench(b, clients, run, batchSize) })
	}
}

// runEventsBench runs one client count against a baseline that only
// decodes the JSON (no checks, no store) and then against Kadenz.
func runEventsBench(b *testing.B, clients int, run func(*testing.B, string, int, func()), batchSize int) {
	b.Run("decode-only", func(b *testing.B) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			body, _ := io.ReadAll(req.Body)
			var batch struct{ Events []api.Event }
			if err := json.Unmarshal(body, &batch); err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(api.EventsResult{Applied: batchSize})
		})}
		go srv.Serve(l)
		defer srv.Close()
		run(b, "http://"+l.Addr().String()+"/v1/events", clients, nil)
	})
	b.Run("kadenz", func(b *testing.B) {
		cfg := config.Default()
		cfg.Listen, cfg.DataDir = "127.0.0.1:0", b.TempDir()
		cfg.Admin.Listen, cfg.Admin.Token = "127.0.0.1:0", "s3cret"
		r, err := New(Options{Config: cfg, Now: func() time.Time { return monday10 }})
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Start(); err != nil {
			b.Fatal(err)
		}
		defer r.Shutdown(b.Context())
		commits0, writes0, _ := r.CommitStats()
		run(b, "http://"+r.AdminAddr().String()+"/v1/events", clients, func() {
			if err := r.flushEvents(false); err != nil {
				b.Fatal(err)
			}
		})
		// How many writes (batches, mostly) each group commit carried.
		if commits, writes, ok := r.CommitStats(); ok && commits > commits0 {
			b.ReportMetric(float64(writes-writes0)/float64(commits-commits0), "writes/commit")
		}
	})
}
