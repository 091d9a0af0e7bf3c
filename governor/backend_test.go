package governor

import (
	"net/http"
	"path/filepath"
	"testing"

	"kadenz/governor/admin/api"
	"kadenz/store"
)

// contractOnly hides every optional ability of a backend (backup, page
// scrubbing, key migration, commit counts): through it the relay has
// exactly store.Store, as it has on the SQL backend.
type contractOnly struct{ store.Store }

// The relay runs on the store contract alone: mail is accepted and
// delivered, feedback and erasure work, and what only bbolt can do is
// refused clearly (backup) or left out (scrubbing freed pages).
func TestRelayRunsOnTheStoreContract(t *testing.T) {
	up := startUpstream(t, nil)
	cfg := testConfig(t, up.addr)
	cfg.Admin.Listen = "127.0.0.1:0"
	db, err := store.Open(filepath.Join(t.TempDir(), "elsewhere.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	backend := contractOnly{db}
	if _, ok := store.Store(backend).(store.Snapshotter); ok {
		t.Fatal("the wrapper still offers a backup: the test would prove nothing")
	}
	r := startRelayWith(t, Options{Config: cfg, Backend: backend})
	if r.DB() != store.Store(backend) {
		t.Fatal("the relay does not run on the store it was handed")
	}
	if err := submit(t, dial(t, r), "crm@shop.test", []string{"ann@example.test"}, testMessage); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delivery", func() bool { return len(up.messages()) == 1 })
	waitFor(t, "the delivered state", func() bool { return firstEnvelope(t, db).State == store.StateDelivered })

	if code, out := adminRequest(t, r, http.MethodGet, "/v1/db/backup", "", "", nil); code != http.StatusNotImplemented {
		t.Errorf("backup on a store that cannot copy itself: %d %s, want 501", code, out)
	}
	var fr api.ForgetResult
	adminJSON(t, r, http.MethodPost, "/v1/forget", map[string]string{"address": "ann@example.test"}, &fr)
	if fr.Incomplete != "" || fr.Erased.Envelopes != 1 || fr.ScrubbedPages != 0 {
		t.Errorf("forget on the contract alone: %+v", fr)
	}
	if _, _, ok := r.CommitStats(); ok {
		t.Error("commit counts from a store that does not count them")
	}
}
