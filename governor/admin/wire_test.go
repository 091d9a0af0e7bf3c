package admin

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"kadenz/store"
)

// fill sets every exported field of the struct v points to to a value
// that is not zero, so that a field the conversion forgets shows.
func fill(t *testing.T, v any) {
	t.Helper()
	s := reflect.ValueOf(v).Elem()
	for i := range s.NumField() {
		f := s.Field(i)
		if !s.Type().Field(i).IsExported() {
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString("x" + s.Type().Field(i).Name)
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(i + 1))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Slice:
			if f.Type().Elem().Kind() == reflect.Uint8 { // json.RawMessage
				f.SetBytes([]byte(`{"k":1}`))
			} else {
				f.Set(reflect.ValueOf([]string{"a", "b"}))
			}
		case reflect.Struct:
			if f.Type() != reflect.TypeOf(time.Time{}) {
				t.Fatalf("%s.%s: a kind the test does not fill", s.Type(), s.Type().Field(i).Name)
			}
			f.Set(reflect.ValueOf(time.Date(2026, 11, 23, 10, 0, i, 0, time.UTC)))
		default:
			t.Fatalf("%s.%s: a kind the test does not fill", s.Type(), s.Type().Field(i).Name)
		}
	}
}

// A stored record and its API form write the same JSON: the API shows
// every field it showed when the store's structs were the wire format.
func TestWireTypesMatchTheStore(t *testing.T) {
	same := func(name string, stored, shown any) {
		t.Helper()
		a, err := json.Marshal(stored)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(shown)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s:\nstore %s\napi   %s", name, a, b)
		}
	}
	var m store.Message
	fill(t, &m)
	same("message", m, apiMessage(m))
	var e store.Envelope
	fill(t, &e)
	same("envelope", e, apiEnvelope(e))
	var s store.Suppression
	fill(t, &s)
	same("suppression", s, apiSuppression(s))
	var c store.SuspendedCampaign
	fill(t, &c)
	same("suspended campaign", c, apiSuspendedCampaign(c))
	var r store.ForgetReport
	fill(t, &r)
	same("forget report", r, apiForgetReport(r))
	if got := apiSuppressions(nil); got == nil {
		t.Error("an empty list must write [], not null")
	}
}
