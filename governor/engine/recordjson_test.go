package engine

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"kadenz/scoring"
)

// randomFill sets every exported field reachable from v (structs, pointers
// to structs, strings, string slices, numbers, bools, times) to a random
// value, so that a field added to Record or scoring.Numbers is filled too.
func randomFill(rng *rand.Rand, v reflect.Value) {
	strs := []string{"", "release", "Winter “sale”", "a<b>&c", "tab\tnew\nline\r\b\f\x01\x1f", `quote " back \`,
		"\u2028\u2029", "bad \xff utf8 \xe2\x82", "日本 é", "\x7f"}
	floats := []float64{0, 1, -1, 0.1234567890123, 1e-7, -3e-7, 1e-6, 1e20, 1e21, 2.5e22, 123456789.125, math.SmallestNonzeroFloat64,
		math.MaxFloat64, 1 / 3.0}
	switch v.Kind() {
	case reflect.Pointer:
		if rng.IntN(4) == 0 {
			v.SetZero()
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		randomFill(rng, v.Elem())
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			switch rng.IntN(4) {
			case 0:
				v.Set(reflect.ValueOf(time.Time{}))
			case 1:
				v.Set(reflect.ValueOf(time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).UTC()))
			default:
				zone := time.FixedZone("", (rng.IntN(29)-14)*1800)
				v.Set(reflect.ValueOf(time.Unix(rng.Int64N(4e9), rng.Int64N(3)*500_000_000).In(zone)))
			}
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				randomFill(rng, v.Field(i))
			}
		}
	case reflect.String:
		v.SetString(strs[rng.IntN(len(strs))])
	case reflect.Slice:
		n := rng.IntN(4)
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			randomFill(rng, s.Index(i))
		}
		if n > 0 || rng.IntN(2) == 0 {
			v.Set(s) // empty but not nil, too
		}
	case reflect.Float64:
		f := floats[rng.IntN(len(floats))]
		if rng.IntN(2) == 0 {
			f = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(40)-20))
		}
		v.SetFloat(f)
	case reflect.Int, reflect.Int64:
		v.SetInt(rng.Int64N(1<<40) - 1<<39)
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 0)
	default:
		panic("randomFill: a field of kind " + v.Kind().String() + ": teach randomFill and appendRecordJSON")
	}
}

// appendRecordJSON writes what json.Marshal writes of a Record, byte for
// byte, and fails where it fails.
func TestRecordJSONIsMarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 5))
	for i := range 20000 {
		var rec Record
		randomFill(rng, reflect.ValueOf(&rec).Elem())
		want, werr := json.Marshal(rec)
		got, gerr := appendRecordJSON(nil, &rec)
		if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("case %d:\n got  %s (%v)\n want %s (%v)", i, got, gerr, want, werr)
		}
	}
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		rec := Record{Numbers: &scoring.Numbers{Cost: bad}}
		if _, err := appendRecordJSON(nil, &rec); err == nil {
			t.Errorf("%v: no error, Marshal fails", bad)
		}
	}
	rec := Record{DecidedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := appendRecordJSON(nil, &rec); err == nil {
		t.Error("year 10000: no error, Marshal fails")
	}
}
