package store

import (
	"encoding/json"
	"reflect"
	"testing"
)

var summarySeeds = []string{
	`{"decided_at":"2026-11-23T09:10:00Z","mode":"enforce","action":"release","at":"2026-11-23T09:10:00Z","reasons":["worth_it","best_time"],"numbers":{"Affinity":0.4,"Content":{"Term":"x"},"List":[1,2,[3]]},"explanation":"“Sale” is released at Mon 23 Nov 09:10 UTC \u003cnow\u003e, \"quoted\""}`,
	`{"action":"defer","would":"suppress","reasons":[]}`,
	`{"action":"suppress"}`,
	`{}`,
	` { "action" : "release" , "reasons" : [ "a" , "b" ] } `,
	`{"Action":"release"}`,
	`{"action":"rel\u0065ase"}`,
	`{"action":null,"reasons":null}`,
	`{"action":"release","action":"defer"}`,
	`{"reasons":["ü"]}`,
	`{"action":5}`,
	`{"x":{"action":"no"},"action":"yes"}`,
	`[1,2]`,
	`"s"`,
}

func TestSummaryScanReadsAsTheDecoder(t *testing.T) {
	scanned := 0
	for _, s := range summarySeeds {
		if _, _, _, ok := summaryScan([]byte(s)); ok {
			scanned++
		}
		checkSummary(t, []byte(s))
		checkLast(t, []byte("["+s+"]"))
		checkLast(t, []byte("["+s+", "+s+" ,{\"action\":\"release\"}]"))
	}
	if scanned < 6 {
		t.Errorf("the scanner read %d of the seeds, want the plain ones at least", scanned)
	}
	for _, l := range []string{`[]`, `[ ]`, `[1]`, `[{"action":"a"},"x"]`, `[{"a":[1,{"b":"]"}]},{"action":"z"}]`} {
		checkLast(t, []byte(l))
	}
}

func checkSummary(t *testing.T, rec []byte) {
	t.Helper()
	if !json.Valid(rec) {
		return // appendRecord refuses it: never stored
	}
	a, r, ok := decisionSummary(rec)
	wa, wr, wok := decisionSummaryJSON(rec)
	if a != wa || ok != wok || len(r) != len(wr) || len(r) > 0 && !reflect.DeepEqual(r, wr) {
		t.Fatalf("%s: scanned %q %q %v, decoded %q %q %v", rec, a, r, ok, wa, wr, wok)
	}
}

func checkLast(t *testing.T, list []byte) {
	t.Helper()
	if !json.Valid(list) {
		return
	}
	a, r, ok := lastDecision(list)
	wa, wr, wok := lastDecisionJSON(list)
	if a != wa || ok != wok || len(r) != len(wr) || len(r) > 0 && !reflect.DeepEqual(r, wr) {
		t.Fatalf("%s: scanned %q %q %v, decoded %q %q %v", list, a, r, ok, wa, wr, wok)
	}
}

// For any valid record and list, the scanner says what the decoder says
// (or leaves it to the decoder); on anything, it never panics.
func FuzzSummaryScan(f *testing.F) {
	for _, s := range summarySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, rec []byte) {
		summaryScan(rec)
		lastElementScan(rec)
		checkSummary(t, rec)
		checkLast(t, rec)
	})
}

// What canonicalJSON keeps as it is, json.Marshal keeps as it is too.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range summarySeeds {
		f.Add([]byte(s))
	}
	for _, s := range []string{`-0.5e+10`, `01`, `1.`, `"\u00e9\ud83d"`, `"\x"`, `{"a":[true,false,null,{}]}`, "\"\u2028\"", `"<"`, ` 1`, `[1,]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, rec []byte) {
		if !canonicalJSON(rec) {
			return
		}
		out, err := json.Marshal(json.RawMessage(rec))
		if err != nil || string(out) != string(rec) {
			t.Fatalf("canonicalJSON(%q) but Marshal gives %q, %v", rec, out, err)
		}
	})
}

func TestCanonicalJSONKeepsEngineRecords(t *testing.T) {
	rec, _ := json.Marshal(map[string]any{"action": "release", "explanation": "“Sale” <now> & then", "numbers": map[string]float64{"a": 1e-9, "b": -3.25}})
	if !canonicalJSON(rec) {
		t.Errorf("a record json.Marshal wrote takes the slow way: %s", rec)
	}
	for _, s := range []string{`{"a": 1}`, `{"a":"<"}`, `[1,]`, `01`, `{"a":1}x`, ``} {
		if canonicalJSON([]byte(s)) {
			t.Errorf("canonicalJSON(%q) = true", s)
		}
	}
}
