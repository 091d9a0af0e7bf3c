package governor

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"kadenz/store"
	"kadenz/store/postgres"
	"kadenz/store/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// db copy moves every kind of item, checks the copy by counts, and the
// copy then answers as the source did — erased recipients included, whose
// keyed hashes only match with the copied secret.
func TestDBCopy(t *testing.T) {
	url := pgtest.URL(t)
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	src, err := store.Open(filepath.Join(dir, "kadenz.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	held := func(_ int, e *store.Envelope) { e.State, e.Due = store.StateHeld, t0.Add(time.Hour) }
	for _, m := range []struct {
		id    string
		rcpts []string
		prep  func(int, *store.Envelope)
	}{
		{"m1", []string{"ann@example.test", "bob@example.test"}, held},
		{"m2", []string{"cid@example.test"}, func(_ int, e *store.Envelope) { e.Express = true }},
		{"m3", []string{"dee@example.test"}, nil},
	} {
		if m.prep == nil {
			m.prep = func(int, *store.Envelope) {}
		}
		var features []byte
		if m.id == "m1" {
			features = []byte(`{"campaign":"Winter","subject":"Boots"}`)
		}
		if _, err := src.AcceptWith(store.Message{ID: m.id, HeaderID: m.id + "@example.test", Received: t0, Features: features}, []byte("Subject: "+m.id+"\r\n\r\nhi\r\n"), m.rcpts, t0, m.prep); err != nil {
			t.Fatal(err)
		}
	}
	claimed, _ := src.Claim(t0, 1) // m2-1 stays in delivery
	bob, _ := src.Envelope("m1-2")
	bob.State = store.StateSuppressed
	if err := src.ApplyDecisions(store.Decided{Recipient: "bob@example.test", Envelopes: []store.Envelope{bob}, Profile: []byte(`{"p":1}`),
		Records: map[string][]byte{"m1-2": []byte(`{"action":"suppress"}`)}, Counters: map[string]int64{"campaign:x:suppressed": 3}}); err != nil {
		t.Fatal(err)
	}
	src.Suppress(false, store.Suppression{Address: "eve@example.test", Reason: "complaint from eve@example.test", At: t0},
		store.Suppression{Address: "bob@example.test", Reason: "unsubscribed", At: t0})
	nothing := func([]byte) (store.FeedbackOutcome, error) { return store.FeedbackOutcome{}, nil }
	src.ApplyFeedback(t0, []store.FeedbackChange{{EventID: "ev-1", Recipient: "eve@example.test", Apply: nothing}, {EventID: "ev-2", Recipient: "bob@example.test", Apply: nothing}})
	src.SetMailboxState("bounces", 7, 42)
	src.SuspendCampaign("Winter", t0)
	keep := store.ForgetRules{Keep: func(store.Envelope, store.Message) bool { return false }, HardStop: func([]byte) bool { return false }}
	if _, err := src.Forget("eve@example.test", t0, keep); err != nil {
		t.Fatal(err)
	}
	logKey, _ := src.PseudonymKey("log")
	winter, _, err := src.CampaignTally("Winter")
	if err != nil || winter.Messages != 1 || len(winter.Reasons) != 0 {
		t.Fatalf("the source's campaign tallies: %+v %v", winter, err)
	}
	src.Close()

	var out bytes.Buffer
	if _, err := CopyToPostgres(filepath.Join(dir, "kadenz.db"), url, "", "relay-1", &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log(out.String())
	if strings.Contains(out.String(), "MISMATCH") || !strings.Contains(out.String(), "envelopes delivering") {
		t.Errorf("report:\n%s", out.String())
	}
	dst, err := postgres.Open(context.Background(), url, postgres.Options{Node: "relay-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if e, err := dst.Envelope("m1-1"); err != nil || e.State != store.StateHeld || !e.Due.Equal(t0.Add(time.Hour)) {
		t.Errorf("m1-1 copied as %+v %v", e, err)
	}
	if body, _ := dst.Body("m3"); string(body) != "Subject: m3\r\n\r\nhi\r\n" {
		t.Errorf("body %q", body)
	}
	if d, _ := dst.Decisions("m1-2"); string(d) != `[{"action":"suppress"}]` {
		t.Errorf("decisions %s", d)
	}
	if c, _ := dst.Counters("campaign:x:suppressed"); c["campaign:x:suppressed"] != 3 {
		t.Errorf("counters %v", c)
	}
	if v, u, _ := dst.MailboxState("bounces"); v != 7 || u != 42 {
		t.Errorf("mailbox %d %d", v, u)
	}
	if s, _ := dst.SuspendedCampaigns(); len(s) != 1 {
		t.Errorf("campaigns %v", s)
	}
	// The campaign tallies are the copy's own, counted as it was written.
	if got, ok, err := dst.CampaignTally("Winter"); err != nil || !ok || !reflect.DeepEqual(got, winter) {
		t.Errorf("copied campaign tallies %+v (%v %v), the source's %+v", got, ok, err, winter)
	}
	// The erased recipient: still suppressed, still forgotten, her event
	// still a duplicate, found through the copied secret.
	if sup, ok, _ := dst.SuppressionOf("eve@example.test"); !ok || sup.Address != "eve@example.test" || strings.Contains(sup.Reason, "eve@") {
		t.Errorf("erased suppression: %+v %v", sup, ok)
	}
	if at, _ := dst.Forgotten("eve@example.test"); !at.Equal(t0) {
		t.Errorf("tombstone: %v", at)
	}
	if applied, dup, _ := dst.ApplyFeedback(t0, []store.FeedbackChange{{EventID: "ev-1", Recipient: "eve@example.test", Apply: nothing}}); applied != 0 || dup != 1 {
		t.Errorf("erased event ID: applied %d dup %d", applied, dup)
	}
	if k, _ := dst.PseudonymKey("log"); !slices.Equal(k, logKey) {
		t.Error("pseudonyms differ after the copy")
	}
	// The envelope claimed at copy time belongs to the named node, which
	// takes it back when it starts.
	if n, _ := dst.Recover(t0.Add(time.Minute)); n != len(claimed) {
		t.Errorf("Recover on relay-1 took %d, want %d", n, len(claimed))
	}
	// The check can fail: told one message more than the database holds,
	// it says MISMATCH.
	src, err = store.Open(filepath.Join(dir, "kadenz.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	have, _ := dst.TableCounts()
	have["messages"]++
	var report bytes.Buffer
	if err := verifyCopy(src, dst, have, &report); !errors.Is(err, ErrCopyMismatch) || !strings.Contains(report.String(), "MISMATCH") {
		t.Errorf("a count off by one: %v\n%s", err, report.String())
	}
	src.Close()
	// A second copy into the now full database is refused.
	out.Reset()
	if _, err := CopyToPostgres(filepath.Join(dir, "kadenz.db"), url, "", "", &out); err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Errorf("copy into a full database: %v", err)
	}
}
