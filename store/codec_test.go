package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// comparable turns a value's times into instant and offset, so that two
// decodings compare equal when they mean the same thing (JSON, for one,
// reads an offset that is the machine's own as the Local zone).
func comparable(v any) string {
	var b strings.Builder
	var walk func(rv reflect.Value)
	walk = func(rv reflect.Value) {
		if t, ok := rv.Interface().(time.Time); ok {
			if t.IsZero() { // JSON and the binary form both keep no zone for it
				b.WriteString("time(zero) ")
				return
			}
			_, off := t.Zone()
			fmt.Fprintf(&b, "time(%d %d %d) ", t.Unix(), t.Nanosecond(), off)
			return
		}
		switch rv.Kind() {
		case reflect.Struct:
			for i := range rv.NumField() {
				fmt.Fprintf(&b, "%s=", rv.Type().Field(i).Name)
				walk(rv.Field(i))
			}
		case reflect.Slice:
			if rv.IsNil() {
				b.WriteString("nil ")
				return
			}
			fmt.Fprintf(&b, "[%d] ", rv.Len())
			for i := range rv.Len() {
				walk(rv.Index(i))
			}
		default:
			fmt.Fprintf(&b, "%q ", fmt.Sprint(rv.Interface()))
		}
	}
	walk(reflect.ValueOf(v))
	return b.String()
}

func codecEnvelopes() []Envelope {
	berlin := time.FixedZone("", 3600)
	return []Envelope{
		{},
		{ID: "m1-1", MessageID: "m1", From: "news@shop.test", To: "a@x.test", State: StateHeld,
			Created: t0, Updated: t0.Add(time.Second), Due: t0.Add(10 * time.Minute)},
		{ID: "m2-3", MessageID: "m2", From: "", To: "Ü@exämple.test", State: StateDeferred,
			Created: t0.In(berlin), Updated: t0.Add(1500 * time.Millisecond).In(berlin), Due: t0.Add(time.Hour),
			Attempts: 7, LastError: "451 4.7.1 try again \"later\"\n", Holdout: true, Express: true,
			Notify: []string{"SUCCESS", "DELAY"}, ORcpt: "rfc822;a@x.test", FirstTried: t0.Add(time.Nanosecond), DelayNotified: true},
		{ID: "m3-1", State: StateDelivered, Created: time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC), Notify: []string{""}},
	}
}

func codecMessages() []Message {
	return []Message{
		{},
		{ID: "m1", From: "news@shop.test", Received: t0, Size: 5458, ClientAddr: "127.0.0.1", HeaderID: "x@shop.test",
			Class: "marketing", ClassReason: "bulk marker List-Unsubscribe",
			Features: json.RawMessage(`{"subject":"Winter sale","priority":50}`)},
		{ID: "m2", Received: t0.In(time.FixedZone("", -5*3600)), Size: -1, AuthUser: "ü", Ret: "HDRS", EnvID: "e+2Bv", SMTPUTF8: true},
	}
}

// What the binary form decodes to is what the JSON form decoded to.
func TestCodecReadsAsJSONDid(t *testing.T) {
	for _, e := range codecEnvelopes() {
		var fromBinary, fromJSON Envelope
		if err := decodeEnvelope(encodeEnvelope(&e), &fromBinary); err != nil {
			t.Fatalf("%s: %v", e.ID, err)
		}
		old, _ := json.Marshal(e)
		if err := decodeEnvelope(old, &fromJSON); err != nil {
			t.Fatalf("%s: the JSON form: %v", e.ID, err)
		}
		if got, want := comparable(fromBinary), comparable(fromJSON); got != want {
			t.Errorf("envelope %s:\nbinary %s\nJSON   %s", e.ID, got, want)
		}
		if got, want := comparable(fromBinary), comparable(e); got != want {
			t.Errorf("envelope %s:\nbinary %s\nwrote  %s", e.ID, got, want)
		}
		if to, err := envelopeTo(encodeEnvelope(&e)); err != nil || to != e.To {
			t.Errorf("envelopeTo = %q, %v; want %q", to, err, e.To)
		}
	}
	for _, m := range codecMessages() {
		var fromBinary, fromJSON Message
		if err := decodeMessage(encodeMessage(&m), &fromBinary); err != nil {
			t.Fatalf("%s: %v", m.ID, err)
		}
		old, _ := json.Marshal(m)
		if err := decodeMessage(old, &fromJSON); err != nil {
			t.Fatalf("%s: the JSON form: %v", m.ID, err)
		}
		if got, want := comparable(fromBinary), comparable(fromJSON); got != want {
			t.Errorf("message %s:\nbinary %s\nJSON   %s", m.ID, got, want)
		}
		if class, err := messageClassOf(encodeMessage(&m)); err != nil || class != m.Class {
			t.Errorf("messageClassOf = %q, %v; want %q", class, err, m.Class)
		}
	}
}

// Values as release 7cb74f6 wrote them (testdata/release-7cb74f6, taken
// from a campaign it relayed) still read, and read the same once
// rewritten in the binary form.
func TestCodecReadsReleaseValues(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "release-7cb74f6", "*.json"))
	if err != nil || len(files) < 6 {
		t.Fatalf("the release's values: %v %v", files, err)
	}
	for _, f := range files {
		v, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var got, again any
		switch {
		case strings.Contains(f, "envelope-"):
			var e, want, e2 Envelope
			if err := decodeEnvelope(v, &e); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			json.Unmarshal(v, &want)
			if e.ID == "" || e.To == "" || e.Created.IsZero() || comparable(e) != comparable(want) {
				t.Errorf("%s read as %+v", f, e)
			}
			if err := decodeEnvelope(encodeEnvelope(&e), &e2); err != nil {
				t.Fatal(err)
			}
			got, again = e, e2
		default:
			var m, want, m2 Message
			if err := decodeMessage(v, &m); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			json.Unmarshal(v, &want)
			if m.ID == "" || m.Class == "" || len(m.Features) == 0 || comparable(m) != comparable(want) {
				t.Errorf("%s read as %+v", f, m)
			}
			if class, err := messageClassOf(v); err != nil || class != m.Class {
				t.Errorf("%s: class %q %v", f, class, err)
			}
			if err := decodeMessage(encodeMessage(&m), &m2); err != nil {
				t.Fatal(err)
			}
			got, again = m, m2
		}
		if comparable(got) != comparable(again) {
			t.Errorf("%s: rewritten it reads\n%s\nnot\n%s", f, comparable(again), comparable(got))
		}
	}
}

// A version-5 file, whose envelopes and messages are JSON, opens, is
// decided and delivered from, and what is rewritten is binary.
func TestSchemaUpgradeFromVersion5(t *testing.T) {
	db, path := openTest(t)
	msg := Message{ID: "m1", From: "news@shop.test", Class: "marketing", Features: json.RawMessage(`{"campaign":"c"}`)}
	envs, err := db.AcceptWith(msg, []byte("Subject: x\r\n\r\nbody\r\n"), []string{"a@x.test", "b@x.test"}, t0,
		func(i int, e *Envelope) { e.State, e.Due = StateHeld, t0.Add(10*time.Minute) })
	if err != nil {
		t.Fatal(err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error { // as the release wrote them
		for _, e := range envs {
			v, _ := json.Marshal(e)
			if err := tx.Bucket(bucketEnvelopes).Put([]byte(e.ID), v); err != nil {
				return err
			}
		}
		v, _ := json.Marshal(msg)
		if err := tx.Bucket(bucketMessages).Put([]byte(msg.ID), v); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put([]byte("schema"), []byte("5"))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(path, Options{NoSync: true}); err != nil {
		t.Fatalf("opening a version-5 file: %v", err)
	}
	defer db.Close()
	due, err := db.DueRecipients(t0.Add(time.Hour), 10)
	if err != nil || len(due) != 2 {
		t.Fatalf("due recipients %v %v", due, err)
	}
	r, err := db.LoadRecipient("a@x.test")
	if err != nil || len(r.Held) != 1 || r.Held[0].ID != envs[0].ID || string(r.Messages["m1"].Features) != `{"campaign":"c"}` {
		t.Fatalf("loaded %+v %v", r, err)
	}
	released := r.Held[0]
	released.State, released.Due, released.Updated = StateQueued, t0.Add(time.Hour), t0.Add(time.Hour)
	if err := db.ApplyDecisions(Decided{Recipient: "a@x.test", Envelopes: []Envelope{released},
		Records: map[string][]byte{released.ID: []byte(`{"action":"release"}`)}}); err != nil {
		t.Fatal(err)
	}
	claimed, err := db.Claim(t0.Add(time.Hour), 10)
	if err != nil || len(claimed) != 1 || claimed[0].ID != envs[0].ID {
		t.Fatalf("claimed %+v %v", claimed, err)
	}
	counts, err := db.CountByState()
	if err != nil || counts[StateHeld] != 1 || counts[StateDelivering] != 1 {
		t.Errorf("counts %v %v", counts, err)
	}
	db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketEnvelopes).Get([]byte(envs[0].ID)); v[0] != envelopeV1 {
			t.Errorf("the rewritten envelope is not binary: %q", v)
		}
		if v := tx.Bucket(bucketEnvelopes).Get([]byte(envs[1].ID)); !bytes.HasPrefix(v, []byte("{")) {
			t.Errorf("the untouched envelope changed: %q", v)
		}
		return nil
	})
	if e, err := db.Envelope(envs[1].ID); err != nil || comparable(e) != comparable(envs[1]) {
		t.Errorf("the JSON envelope reads %+v %v", e, err)
	}
}

// Arbitrary bytes never panic the decoders; what decodes, encoded again,
// decodes the same.
func FuzzStoredValues(f *testing.F) {
	for _, e := range codecEnvelopes() {
		f.Add(encodeEnvelope(&e))
	}
	for _, m := range codecMessages() {
		f.Add(encodeMessage(&m))
	}
	f.Add([]byte(`{"id":"x","to":"a@x.test"}`))
	f.Add([]byte{envelopeV1, 0xff})
	f.Fuzz(func(t *testing.T, v []byte) {
		var e Envelope
		if decodeEnvelope(v, &e) == nil && len(v) > 0 && v[0] == envelopeV1 {
			var e2 Envelope
			if err := decodeEnvelope(encodeEnvelope(&e), &e2); err != nil || comparable(e) != comparable(e2) {
				t.Fatalf("envelope %q: again %v\n%s\n%s", v, err, comparable(e), comparable(e2))
			}
			if to, err := envelopeTo(v); err != nil || to != e.To {
				t.Fatalf("envelopeTo %q: %q %v", v, to, err)
			}
		}
		envelopeTo(v)
		var m Message
		if decodeMessage(v, &m) == nil && len(v) > 0 && v[0] == messageV1 {
			var m2 Message
			if err := decodeMessage(encodeMessage(&m), &m2); err != nil || comparable(m) != comparable(m2) {
				t.Fatalf("message %q: again %v\n%s\n%s", v, err, comparable(m), comparable(m2))
			}
			if class, err := messageClassOf(v); err != nil || class != m.Class {
				t.Fatalf("messageClassOf %q: %q %v", v, class, err)
			}
		}
		messageClassOf(v)
	})
}

// Any envelope written reads back as written.
func FuzzEnvelopeRoundTrip(f *testing.F) {
	f.Add("m1-1", "a@x.test", "451 later", int64(1764000000), uint32(5), int32(3600), 3, uint8(5), "SUCCESS,DELAY")
	f.Fuzz(func(t *testing.T, id, to, lastErr string, sec int64, nsec uint32, off int32, attempts int, flags uint8, notify string) {
		off %= 24 * 3600
		at := time.Unix(sec, int64(nsec%1e9)).In(time.FixedZone("", int(off)))
		e := Envelope{ID: id, MessageID: id, From: to, To: to, State: State(lastErr), Created: at, Updated: at.UTC(),
			Due: at.Add(time.Minute), Attempts: attempts, LastError: lastErr, Holdout: flags&1 != 0, Express: flags&2 != 0,
			DelayNotified: flags&4 != 0, ORcpt: notify, FirstTried: at}
		if notify != "" {
			e.Notify = strings.Split(notify, ",")
		}
		var got Envelope
		if err := decodeEnvelope(encodeEnvelope(&e), &got); err != nil || comparable(got) != comparable(e) {
			t.Fatalf("%v\nwrote %s\nread  %s", err, comparable(e), comparable(got))
		}
	})
}

// AsStored is what a read of the message returns, to the last field: the
// delivery queue hands a just-accepted message to delivery in its place.
// Compared with reflect.DeepEqual, not comparable: zones and empty
// features must match exactly too.
func FuzzAsStoredIsWhatIsReadBack(f *testing.F) {
	for _, m := range codecMessages() {
		_, off := m.Received.Zone()
		f.Add(m.ID, m.From, string(m.Features), m.Received.Unix(), uint32(m.Received.Nanosecond()), int32(off), m.Received.IsZero(), uint8(0), m.Ret)
	}
	f.Add("m9", "a@x.test", "", int64(1764000000), uint32(5), int32(0), false, uint8(3), "FULL")
	f.Fuzz(func(t *testing.T, id, from, features string, sec int64, nsec uint32, off int32, zero bool, flags uint8, ret string) {
		off %= 24 * 3600
		var at time.Time
		switch {
		case zero:
		case flags&2 != 0: // a named zone, and a monotonic reading
			at = time.Now().In(time.FixedZone("CET", int(off)))
		case flags&4 != 0:
			at = time.Unix(sec, int64(nsec%1e9)).In(time.Local)
		default:
			at = time.Unix(sec, int64(nsec%1e9)).In(time.FixedZone("", int(off)))
		}
		m := Message{ID: id, From: from, Received: at, Ret: ret, EnvID: features, SMTPUTF8: flags&1 != 0, Size: int(sec)}
		if features != "" || flags&8 != 0 {
			m.Features = json.RawMessage(features) // empty but not nil when flags&8
		}
		var read Message
		if err := decodeMessage(encodeMessage(&m), &read); err != nil {
			t.Fatal(err)
		}
		if got := AsStored(m); !reflect.DeepEqual(got, read) {
			t.Fatalf("AsStored %#v\nread     %#v", got, read)
		}
	})
}
