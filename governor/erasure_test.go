package governor

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kadenz/governor/admin/api"
	"kadenz/store"
)

// rawHits reads every file under dir and returns, per file, how often
// needle occurs in it in any case: the bytes on disk, not what the store
// shows.
func rawHits(t *testing.T, dir, needle string) map[string]int {
	t.Helper()
	hits := map[string]int{}
	needle = strings.ToLower(needle)
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		if n := bytes.Count(bytes.ToLower(b), []byte(needle)); n > 0 {
			hits[path] = n
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("no files under %s", dir)
	}
	return hits
}

func TestForgetLeavesNoByteInTheDataDir(t *testing.T) {
	c := &clock{t: monday10}
	cfg := governedConfig(t, "") // no upstream: delivered mail goes to the outbox
	cfg.Admin.Listen = "127.0.0.1:0"
	r, err := New(Options{Config: cfg, Now: c.Now, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	cl := dial(t, r)
	const typed = "Dora@Example.TEST"
	// A receipt whose Message-ID contains her address, delivered to the
	// outbox; a marketing message, held.
	if err := submit(t, cl, "shop@shop.test", []string{typed}, strings.Replace(transactional(typed, "x"), "<x@shop.test>", "<order-1."+typed+">", 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the receipt in the outbox", func() bool {
		files, _ := filepath.Glob(filepath.Join(cfg.DataDir, "outbox", "*.eml"))
		return len(files) == 1
	})
	if err := submit(t, cl, "news@shop.test", []string{"dora@example.test", "eve@example.test"},
		strings.ReplaceAll(marketing("Winter boots", ""), "To: ann@example.test", "To: undisclosed-recipients:;")); err != nil {
		t.Fatal(err)
	}
	// An operator's suppression whose reason names her, then her own
	// events: an open whose ID contains her address, an unsubscribe.
	adminJSON(t, r, http.MethodPost, "/v1/suppressions", map[string]string{"address": typed, "reason": "asked by dora@example.test on the phone"}, &store.Suppression{})
	var res api.EventsResult
	events := `{"events": [{"id": "open-dora@example.test-1", "kind": "open", "recipient": "dora@example.test"},
		{"id": "u-17", "kind": "unsubscribe", "recipient": "DORA@example.test"}]}`
	if code, out := adminRequest(t, r, http.MethodPost, "/v1/events", "", "application/json", strings.NewReader(events)); code != 200 {
		t.Fatalf("events: %d %s", code, out)
	} else if json.Unmarshal(out, &res); res.Applied != 2 {
		t.Fatalf("events: %s", out)
	}
	for _, needle := range []string{"dora@example.test", "order-1.dora@example.test"} {
		if len(rawHits(t, cfg.DataDir, needle)) == 0 {
			t.Fatalf("before forget no file holds %q: the scan would prove nothing", needle)
		}
	}

	var fr api.ForgetResult
	adminJSON(t, r, http.MethodPost, "/v1/forget", map[string]string{"address": "dora@EXAMPLE.test"}, &fr)
	t.Logf("forget: %+v", fr)
	if fr.Incomplete != "" || fr.OutboxFiles != 1 || fr.Erased.Suppressions != 1 || fr.Erased.EventIDs != 2 || !fr.Erased.Tombstone || fr.ScrubbedPages == 0 {
		t.Errorf("forget result %+v", fr)
	}
	check := func(when string) {
		t.Helper()
		for _, needle := range []string{typed, "order-1.dora", "open-dora@"} {
			if hits := rawHits(t, cfg.DataDir, needle); len(hits) > 0 {
				t.Errorf("%s, %q is still in %v", when, needle, hits)
			}
		}
		if len(rawHits(t, cfg.DataDir, "eve@example.test")) == 0 {
			t.Errorf("%s, eve's mail is gone too", when)
		}
	}
	check("after forget, with the relay running")

	// She is still suppressed, by her hash; the list shows no address.
	if _, listed, err := r.DB().SuppressionOf("dora@example.test"); err != nil || !listed {
		t.Errorf("after forget the address is off the suppression list (%v)", err)
	}
	var list []store.Suppression
	adminJSON(t, r, http.MethodGet, "/v1/suppressions", nil, &list)
	if len(list) != 1 || list[0].Address != "" || list[0].Pseudonym == "" || strings.Contains(list[0].Reason, "dora") {
		t.Errorf("suppression list after forget: %+v", list)
	}
	// A retried event is still a duplicate, and writes nothing about her.
	code, out := adminRequest(t, r, http.MethodPost, "/v1/events", "", "application/json",
		strings.NewReader(`{"id": "open-dora@example.test-1", "kind": "open", "recipient": "dora@example.test"}`))
	if json.Unmarshal(out, &res); code != 200 || res.Duplicates != 1 || res.Applied != 0 {
		t.Errorf("the retried event after forget: %d %s", code, out)
	}
	// New marketing mail to her is suppressed.
	if err := submit(t, cl, "news@shop.test", []string{"dora@example.test"}, marketing("Spring coats", "")); err != nil {
		t.Fatal(err)
	}
	step(t, r, c, 5*time.Minute)
	waitFor(t, "the new message to be suppressed", func() bool {
		return envelopeOf(t, r.DB(), "dora@example.test", 0).State == store.StateSuppressed
	})

	cl.Quit()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// The new message named her again; erase it too and look once more.
	r2 := startRelayAt(t, cfg, c)
	adminJSON(t, r2, http.MethodPost, "/v1/forget", map[string]string{"address": typed}, &fr)
	check("after a restart and a second forget")
}
