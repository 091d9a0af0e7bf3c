package store

import (
	"reflect"
	"testing"
	"time"
)

// A file of schema version 6 (no campaign tallies, no campaign lists) gets
// them built once when it is opened; they then equal the walk, a page of
// the campaign's envelopes reads through the list, and later writes keep
// them.
func TestCampaignTalliesBuiltForAVersion6File(t *testing.T) {
	path := t.TempDir() + "/kadenz.db"
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)
	for i, f := range []string{`{"campaign":"spring","subject":"First"}`, `{"campaign":"fall","subject":"Autumn"}`, `{"campaign":"spring"}`} {
		msg := Message{ID: "m" + string(rune('a'+i)), From: "shop@example.test", Received: at, Class: "marketing", Features: []byte(f)}
		if _, err := db.AcceptWith(msg, []byte("Subject: x\r\n\r\nx\r\n"), []string{"ann@example.test", "bob@example.test"}, at,
			func(j int, e *Envelope) { e.State, e.Due, e.Holdout = StateHeld, at, j == 1 }); err != nil {
			t.Fatal(err)
		}
	}
	e, _ := db.Envelope("ma-1")
	e.State = StateSuppressed
	if err := db.ApplyDecisions(Decided{Recipient: e.To, Envelopes: []Envelope{e},
		Records: map[string][]byte{e.ID: []byte(`{"action":"defer","reasons":["fatigue"]}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := db.ApplyDecisions(Decided{Recipient: e.To, Envelopes: []Envelope{e},
		Records: map[string][]byte{e.ID: []byte(`{"action":"suppress","reasons":["fatigue"]}`)}}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = reopenAsVersion(t, path, "6", bucketCampaignTallies, bucketCampaignMessages)
	defer db.Close()
	walked, err := WalkCampaignTallies(db)
	if err != nil {
		t.Fatal(err)
	}
	spring, ok, err := db.CampaignTally("spring")
	if err != nil || !ok {
		t.Fatalf("spring after the upgrade: %v %v", ok, err)
	}
	if !reflect.DeepEqual(spring, *walked["spring"]) {
		t.Fatalf("built tallies differ from the walk:\nkept   %+v\nwalked %+v", spring, *walked["spring"])
	}
	want := CampaignTally{Campaign: "spring", Subject: "First", Messages: 2,
		Envelopes: []CampaignEnvelopeTally{{StateHeld, false, false, 1}, {StateHeld, true, false, 2}, {StateSuppressed, false, true, 1}},
		Reasons:   []CampaignReasonTally{{"fatigue", 1}}}
	if !reflect.DeepEqual(spring, want) {
		t.Errorf("spring after the upgrade: %+v, want %+v", spring, want)
	}
	p, err := db.CampaignEnvelopes("spring", "", 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range p.Records {
		got = append(got, r.Envelope.ID)
	}
	if !reflect.DeepEqual(got, []string{"mc-2", "mc-1", "ma-2"}) || p.Next != "ma-2" {
		t.Errorf("first page of spring: %v next %q, want mc-2 mc-1 ma-2 next ma-2", got, p.Next)
	}

	// A write after the upgrade moves what was built.
	msg := Message{ID: "md", From: "shop@example.test", Received: at, Class: "marketing", Features: []byte(`{"campaign":"spring","subject":"Last"}`)}
	if _, err := db.Accept(msg, []byte("Subject: x\r\n\r\nx\r\n"), []string{"cid@example.test"}, at); err != nil {
		t.Fatal(err)
	}
	spring, _, err = db.CampaignTally("spring")
	if err != nil {
		t.Fatal(err)
	}
	if walked, _ := WalkCampaignTallies(db); !reflect.DeepEqual(spring, *walked["spring"]) || spring.Subject != "Last" || spring.Messages != 3 {
		t.Errorf("after an accept: %+v, walk %+v", spring, *walked["spring"])
	}
}
