package store

import (
	"encoding/json"
	"testing"
)

// appendRecord writes what decoding the list, appending the record and
// encoding it again wrote before.
func TestAppendRecordMatchesReencoding(t *testing.T) {
	recs := [][]byte{
		[]byte(`{"action":"release","n":0.5}`),
		[]byte(`{ "action": "suppress",  "why": "a <b> & c" }`),
		[]byte(`{"explanation":"“Winter sale” is released\nreasons: worth-it"}`),
	}
	var list, want []byte
	for _, rec := range recs {
		var decoded []json.RawMessage
		if want != nil {
			if err := json.Unmarshal(want, &decoded); err != nil {
				t.Fatal(err)
			}
		}
		var err error
		if want, err = json.Marshal(append(decoded, rec)); err != nil {
			t.Fatal(err)
		}
		if list, err = appendRecord(list, rec); err != nil {
			t.Fatal(err)
		}
		if string(list) != string(want) {
			t.Fatalf("appendRecord = %s, want %s", list, want)
		}
	}
	if _, err := appendRecord(list, []byte(`{"broken":`)); err == nil {
		t.Error("a record that is not JSON was appended")
	}
	if _, err := appendRecord([]byte(`{"not":"a list"}`), recs[0]); err == nil {
		t.Error("appended to something that is not a list")
	}
}
