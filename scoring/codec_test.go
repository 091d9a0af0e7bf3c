package scoring

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// diffProfile returns where a and b differ, "" if nowhere: every field,
// exported or not, floats by their bits, times by instant and offset (the
// stored forms keep the offset, not the zone's name), nil and empty slices
// and maps alike.
func diffProfile(a, b *Profile) string {
	return diffValue("Profile", reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem())
}

var timeType = reflect.TypeFor[time.Time]()

func diffValue(path string, a, b reflect.Value) string {
	if a.Type() == timeType && a.CanInterface() {
		ta, tb := a.Interface().(time.Time), b.Interface().(time.Time)
		_, oa := ta.Zone()
		_, ob := tb.Zone()
		if !ta.Equal(tb) || ta.IsZero() != tb.IsZero() || oa != ob {
			return fmt.Sprintf("%s: %v != %v", path, ta, tb)
		}
		return ""
	}
	switch a.Kind() {
	case reflect.Float32, reflect.Float64:
		if math.Float64bits(a.Float()) != math.Float64bits(b.Float()) {
			return fmt.Sprintf("%s: %v != %v", path, a.Float(), b.Float())
		}
	case reflect.Bool:
		if a.Bool() != b.Bool() {
			return fmt.Sprintf("%s: %v != %v", path, a.Bool(), b.Bool())
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if a.Int() != b.Int() {
			return fmt.Sprintf("%s: %v != %v", path, a.Int(), b.Int())
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if a.Uint() != b.Uint() {
			return fmt.Sprintf("%s: %v != %v", path, a.Uint(), b.Uint())
		}
	case reflect.String:
		if a.String() != b.String() {
			return fmt.Sprintf("%s: %q != %q", path, a.String(), b.String())
		}
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: length %d != %d", path, a.Len(), b.Len())
		}
		for i := range a.Len() {
			if d := diffValue(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i)); d != "" {
				return d
			}
		}
	case reflect.Map:
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: %d entries != %d", path, a.Len(), b.Len())
		}
		for _, k := range a.MapKeys() {
			bv := b.MapIndex(k)
			if !bv.IsValid() {
				return fmt.Sprintf("%s[%v]: missing", path, k)
			}
			if d := diffValue(fmt.Sprintf("%s[%v]", path, k), a.MapIndex(k), bv); d != "" {
				return d
			}
		}
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return fmt.Sprintf("%s: nil and not nil", path)
			}
			return ""
		}
		return diffValue(path, a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if d := diffValue(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i)); d != "" {
				return d
			}
		}
	default:
		return fmt.Sprintf("%s: cannot compare a %s: teach diffValue", path, a.Kind())
	}
	return ""
}

// fill sets every exported field reachable from v to a value that is not
// zero and differs from its neighbours': slices and maps get two elements,
// pointers a value, times a distinct instant with nanoseconds (every other
// one in a zone east of UTC). A kind it does not know fails the test, so a
// new field of a new shape cannot slip through unexamined.
func fill(t *testing.T, path string, v reflect.Value, seed *int) {
	t.Helper()
	*seed++
	n := *seed
	if v.Type() == timeType {
		tm := time.Unix(1_700_000_000+int64(n)*86_461, int64(n)*1_000_003%1_000_000_000).UTC()
		if n%2 == 1 {
			tm = tm.In(time.FixedZone("", 3600*(n%12+1)))
		}
		v.Set(reflect.ValueOf(tm))
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(n%100 + 1))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		x := uint64(n) * 0x9E3779B97F4A7C15
		if v.OverflowUint(x) {
			x = uint64(n%100 + 1)
		}
		v.SetUint(x)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(n) + 1/3.0)
	case reflect.String:
		v.SetString(fmt.Sprintf("%s-%d", path, n))
	case reflect.Array:
		for i := range v.Len() {
			fill(t, fmt.Sprintf("%s[%d]", path, i), v.Index(i), seed)
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(t, fmt.Sprintf("%s[%d]", path, i), s.Index(i), seed)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for i := range 2 {
			k := reflect.New(v.Type().Key()).Elem()
			fill(t, fmt.Sprintf("%s.key%d", path, i), k, seed)
			e := reflect.New(v.Type().Elem()).Elem()
			fill(t, fmt.Sprintf("%s[%d]", path, i), e, seed)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Pointer:
		e := reflect.New(v.Type().Elem())
		fill(t, path, e.Elem(), seed)
		v.Set(e)
	case reflect.Struct:
		exported := 0
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			exported++
			fill(t, path+"."+f.Name, v.Field(i), seed)
		}
		if exported == 0 {
			t.Fatalf("%s: a %s with no exported fields: teach fill", path, v.Type())
		}
	default:
		t.Fatalf("%s: cannot fill a %s: teach fill, and the codec", path, v.Kind())
	}
}

// Every exported field of Profile, however deep, must survive the binary
// form: a field added to Profile and forgotten by the codec fails here.
func TestProfileCodecCoversEveryField(t *testing.T) {
	var p Profile
	seed := 0
	fill(t, "Profile", reflect.ValueOf(&p).Elem(), &seed)
	raw, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if raw[0] != profileMagic {
		t.Fatalf("Encode wrote %q..., not the binary form", raw[:min(8, len(raw))])
	}
	back, err := DecodeProfile(raw)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffProfile(&p, back); d != "" {
		t.Fatalf("not round-tripped by the binary codec: %s", d)
	}
	// The comparison must see a forgotten field: dropping any one of
	// them is noticed.
	pv := reflect.ValueOf(&p).Elem()
	for i := range pv.NumField() {
		if !pv.Type().Field(i).IsExported() {
			continue
		}
		c := p
		reflect.ValueOf(&c).Elem().Field(i).SetZero()
		if diffProfile(&p, &c) == "" {
			t.Errorf("zeroing %s is not seen", pv.Type().Field(i).Name)
		}
	}
}

// The summary a decision leaves in the profile (comfortMemo) is carried by
// the binary form, so the engine's next decision resumes from it; the
// JSON form drops it and the next decision walks the history again. Both
// decide the same.
func TestProfileCodecKeepsSummary(t *testing.T) {
	for seed := uint64(0); seed < 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 21))
		in := goldenInput(r)
		if in.Profile == nil || len(in.Profile.History) < 20 {
			continue
		}
		var pl Planner
		first := pl.Decide(nil, &in)
		raw, err := in.Profile.Encode()
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeProfile(raw)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffProfile(in.Profile, back); d != "" {
			t.Fatalf("seed %d: %s", seed, d)
		}
		if in.Profile.comfort.n > 0 && back.comfort.n == 0 {
			t.Fatalf("seed %d: the summary was lost", seed)
		}
		js, _ := json.Marshal(in.Profile)
		fromJSON, err := DecodeProfile(js)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []*Profile{back, fromJSON} {
			in2 := in
			in2.Profile = p
			a, b := newDigest(), newDigest()
			a.decisions(first)
			b.decisions(pl.Decide(nil, &in2))
			if a.sum() != b.sum() {
				t.Fatalf("seed %d: decisions differ after the stored form", seed)
			}
		}
	}
}

func oldProfiles(t testing.TB) map[string][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", "release-f9bfe76", "*.json"))
	if err != nil || len(files) < 10 {
		t.Fatalf("fixtures: %v %v", files, err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = raw
	}
	return out
}

// Profiles written by the release before the binary form (commit f9bfe76,
// testdata/release-f9bfe76/make.sh) read the same as that release read
// them, decide the same, and are written back in the binary form, whose
// JSON view is byte for byte what that release stored.
func TestProfileCodecReadsReleaseF9bfe76(t *testing.T) {
	var histories, engaged, bounced int
	for name, raw := range oldProfiles(t) {
		var old Profile // how f9bfe76 read it
		if err := json.Unmarshal(raw, &old); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p, err := DecodeProfile(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d := diffProfile(&old, p); d != "" {
			t.Fatalf("%s read differently: %s", name, d)
		}
		bin, err := p.Encode()
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeProfile(bin)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d := diffProfile(&old, back); d != "" {
			t.Fatalf("%s after the binary form: %s", name, d)
		}
		view, err := ProfileJSON(bin)
		if err != nil || !bytes.Equal(view, raw) {
			t.Errorf("%s: JSON view of the binary form differs (%v):\n%s\n%s", name, err, view, raw)
		}
		t.Logf("%s: %d bytes JSON, %d binary", name, len(raw), len(bin))
		// The same decisions, from the old reading and from the new one.
		r := rand.New(rand.NewPCG(uint64(len(raw)), 5))
		now := old.DecayedAt.Add(30 * time.Hour)
		for _, p := range []*Profile{back} {
			in := Input{Now: now, Recipient: name, Profile: &old, Held: goldenHeld(r, now, 4), Caps: Caps{PerDay: 2}}
			a := newDigest()
			a.decisions(Decide(in))
			in.Profile = p
			b := newDigest()
			b.decisions(Decide(in))
			if a.sum() != b.sum() {
				t.Errorf("%s: decisions differ", name)
			}
		}
		if len(old.History) > 0 {
			histories++
		}
		if old.All.Opens > 0 {
			engaged++
		}
		if old.LastBounce != nil {
			bounced++
		}
	}
	if histories < 8 || engaged < 5 || bounced < 1 {
		t.Errorf("fixtures too thin: %d with history, %d engaged, %d bounced", histories, engaged, bounced)
	}
}

func TestProfileCodecRejectsDamage(t *testing.T) {
	p := benchProfile(30)
	raw, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string][]byte{
		"truncated":      raw[:len(raw)/2],
		"magic only":     raw[:1],
		"newer version":  append([]byte{profileMagic, profileVersion + 1}, raw[2:]...),
		"trailing bytes": append(append([]byte{}, raw...), 0),
		"not json":       []byte("{not json"),
	}
	for name, b := range bad {
		if _, err := DecodeProfile(b); err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.HasPrefix(err.Error(), "profile: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if p, err := DecodeProfile(nil); err != nil || len(p.History) != 0 {
		t.Errorf("no bytes: %v %v", p, err)
	}
}

// FuzzProfileCodec: whatever the bytes, decoding never panics, and what
// decodes survives the binary form exactly, which is then stable.
func FuzzProfileCodec(f *testing.F) {
	olds, err := filepath.Glob(filepath.Join("testdata", "release-359011a", "*.bin"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range olds {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw) // version 1 with dense content counts
		p, _ := DecodeProfile(raw)
		b, _ := p.Encode()
		f.Add(b) // version 3
	}
	for _, raw := range oldProfiles(f) {
		f.Add(raw)
		p, _ := DecodeProfile(raw)
		b, _ := p.Encode()
		f.Add(b)
	}
	for seed := uint64(0); seed < 20; seed++ {
		in := goldenInput(rand.New(rand.NewPCG(seed, 8)))
		if in.Profile == nil {
			continue
		}
		Decide(in) // leaves a summary in the profile
		b, _ := in.Profile.Encode()
		f.Add(b)
	}
	if b, err := benchProfile(40).Encode(); err == nil {
		f.Add(b) // version 4: open delays
	}
	f.Add([]byte{profileMagic, profileVersion})
	f.Add([]byte(`{"history":[{"at":"2025-01-01T10:00:00+05:30"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := DecodeProfile(raw)
		if err != nil {
			return
		}
		b1, err := p.Encode()
		if err != nil {
			if raw[0] != profileMagic {
				return // a JSON time the binary form cannot hold (none fits JSON's years 0-9999)
			}
			t.Fatalf("decoded binary profile does not encode: %v", err)
		}
		q, err := DecodeProfile(b1)
		if err != nil {
			t.Fatalf("own output unreadable: %v", err)
		}
		if d := diffProfile(p, q); d != "" {
			t.Fatalf("not round-tripped: %s", d)
		}
		b2, err := q.Encode()
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("second encoding differs (%v)", err)
		}
	})
}

// benchProfile is a profile with n releases, engagement on many of them,
// a sender and campaigns that repeat, and the summary a decision leaves.
func benchProfile(n int) *Profile {
	r := rand.New(rand.NewPCG(4, 4))
	m := DefaultMemory()
	p := &Profile{Timezone: "Europe/Berlin"}
	at := t0.Add(-time.Duration(n) * 9 * time.Hour)
	for i := range n {
		at = at.Add(time.Duration(6+r.IntN(6)) * time.Hour)
		id := fmt.Sprintf("0bk%07x-%d", r.Uint32(), i)
		p.RecordRelease(Release{At: at, MessageID: id, Campaign: fmt.Sprintf("spring-%d", r.IntN(12)), Sender: "news@shop.example",
			Topics: []string{goldenTopics[r.IntN(len(goldenTopics))]}, Fingerprint: r.Uint64()}, m)
		if r.IntN(3) == 0 {
			p.RecordEvent(Event{Kind: EventOpen, At: at.Add(time.Duration(r.IntN(40)) * time.Hour), MessageID: id}, nil, m)
		}
	}
	Decide(Input{Now: at.Add(time.Hour), Profile: p})
	return p
}

// BenchmarkProfileCodec: the JSON form against the binary form, encoding
// and decoding a 100- and a 200-release profile (the default
// Memory.MaxHistory), with the stored size as a metric.
func BenchmarkProfileCodec(b *testing.B) {
	for _, n := range []int{100, 200} {
		p := benchProfile(n)
		js, err := json.Marshal(p)
		if err != nil {
			b.Fatal(err)
		}
		bin, err := p.Encode()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("json/encode/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.Marshal(p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(js)), "bytes")
		})
		b.Run(fmt.Sprintf("binary/encode/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Encode(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(bin)), "bytes")
		})
		b.Run(fmt.Sprintf("json/decode/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeProfile(js); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(js)), "bytes")
		})
		b.Run(fmt.Sprintf("binary/decode/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeProfile(bin); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(bin)), "bytes")
		})
	}
}

// Shadow mode's held copies (ShadowHeld) are the only part of version 2: a
// profile without them, the only kind enforce mode writes, is written as
// version 1 byte for byte as before, and one with them as version 2,
// which round-trips.
func TestProfileCodecShadowCopiesAreVersion2(t *testing.T) {
	p := benchProfile(40)
	clearOpenDelays(p) // else version 4
	v1, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if v1[1] != 1 {
		t.Fatalf("a profile without copies is written as version %d", v1[1])
	}
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	withCopies := *p
	withCopies.ShadowHeld = []ShadowHeld{
		{ID: "m1-1", From: "news@shop.test", Received: t0, Sent: t0.Add(5 * time.Minute), Due: t0.Add(20 * time.Hour),
			Features: []byte(`{"campaign":"spring","priority":40}`), ClickedAt: t0.Add(time.Hour)},
		{ID: "m2-1", From: "news@shop.test", Received: t0.Add(time.Hour), Sent: t0.Add(time.Hour), Due: t0.Add(30 * time.Hour)},
	}
	v2, err := withCopies.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if v2[1] != 2 || !bytes.HasPrefix(v2[2:], v1[2:]) {
		t.Fatalf("with copies: version %d, and not version 1's bytes followed by the copies", v2[1])
	}
	back, err := DecodeProfile(v2)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffProfile(&withCopies, back); d != "" {
		t.Fatalf("copies not round-tripped: %s", d)
	}
	back.ShadowHeld = nil
	again, err := back.Encode()
	if err != nil || !bytes.Equal(again, v1) {
		t.Fatalf("without its copies the profile is not version 1's bytes again (%v)", err)
	}
	if _, err := DecodeProfile(append([]byte{profileMagic, profileVersion + 1}, v1[2:]...)); err == nil {
		t.Errorf("version %d was read", profileVersion+1)
	}
}

// DecodeProfileInto leaves nothing of what p held before: decoded into a
// profile with every field set, each stored form reads as DecodeProfile
// reads it into a new one.
func TestDecodeProfileIntoEmptiesFirst(t *testing.T) {
	var full Profile
	seed := 0
	fill(t, "Profile", reflect.ValueOf(&full).Elem(), &seed)
	fullRaw, err := full.Encode()
	if err != nil {
		t.Fatal(err)
	}
	small := Profile{Timezone: "Europe/Berlin"}
	small.Hours[3] = 1
	smallRaw, _ := small.Encode()
	for _, raw := range [][]byte{nil, smallRaw, []byte(`{"timezone":"Asia/Tokyo"}`), fullRaw} {
		var p Profile
		if err := DecodeProfileInto(&p, fullRaw); err != nil {
			t.Fatal(err)
		}
		if err := DecodeProfileInto(&p, raw); err != nil {
			t.Fatal(err)
		}
		want, err := DecodeProfile(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&p, want) {
			t.Errorf("%.20q decoded over a full profile: %s", raw, diffProfile(want, &p))
		}
	}
	if err := DecodeProfileInto(new(Profile), []byte{profileMagic, 99}); err == nil {
		t.Error("a damaged profile decoded without an error")
	}
}

// Binary profiles written by the release before the sparse content arrays
// (commit 359011a: version 1, every content count stored; made by
// testdata/release-f9bfe76/make.sh with OUT=testdata/release-359011a
// EXT=bin) read as that release showed them through its API, and are
// written back as version 3: smaller, and the same profile to the bit.
func TestProfileCodecReadsRelease359011a(t *testing.T) {
	bins, err := filepath.Glob(filepath.Join("testdata", "release-359011a", "*.bin"))
	if err != nil || len(bins) < 10 {
		t.Fatalf("fixtures: %v %v", bins, err)
	}
	var oldBytes, newBytes int
	for _, f := range bins {
		name := filepath.Base(f)
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		view, err := os.ReadFile(strings.TrimSuffix(f, ".bin") + ".view")
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) < 2 || raw[0] != profileMagic || raw[1] != profileVersion1 {
			t.Fatalf("%s: not a version 1 binary profile", name)
		}
		p, err := DecodeProfile(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p.Content == nil || len(p.Content.Sends) != ContentBuckets {
			t.Fatalf("%s: no content counts: the fixture does not test their old form", name)
		}
		js, err := ProfileJSON(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got, want any
		if err := json.Unmarshal(js, &got); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(view, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: reads differently from what release 359011a showed:\n got %s\nwant %s", name, js, view)
		}
		b, err := p.Encode()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b[1] != profileVersion3 {
			t.Errorf("%s: written back as version %d", name, b[1])
		}
		q, err := DecodeProfile(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d := diffProfile(p, q); d != "" {
			t.Errorf("%s: not round-tripped: %s", name, d)
		}
		oldBytes += len(raw)
		newBytes += len(b)
	}
	if newBytes >= oldBytes-len(bins)*1000 {
		t.Errorf("%d profiles take %d bytes as version 3, %d as version 1: the sparse arrays should save most of their 1.5 KB each", len(bins), newBytes, oldBytes)
	}
	t.Logf("%d profiles: %d bytes as version 1, %d as version 3", len(bins), oldBytes, newBytes)
}

func clearOpenDelays(p *Profile) {
	for i := range p.History {
		p.History[i].OpenedAfter = 0
	}
}

// Open delays (presence.go) need version 4; a profile without any is
// written as before, byte for byte, and a version 4 profile differs from
// it only in its version byte, the flags of the opened releases and their
// delays.
func TestProfileCodecOpenDelaysAreVersion4(t *testing.T) {
	p := benchProfile(40)
	delays := 0
	for i := range p.History {
		if p.History[i].OpenedAfter > 0 {
			delays++
		}
	}
	if delays == 0 {
		t.Fatal("the bench profile has no open delays: RecordEvent no longer keeps them")
	}
	v4, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if v4[1] != 4 {
		t.Fatalf("a profile with open delays is written as version %d", v4[1])
	}
	back, err := DecodeProfile(v4)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffProfile(p, back); d != "" {
		t.Fatalf("not round-tripped: %s", d)
	}
	without := *p
	without.History = slices.Clone(p.History)
	clearOpenDelays(&without)
	old, err := without.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if old[1] != 1 {
		t.Fatalf("without delays: version %d", old[1])
	}
	if extra := len(v4) - len(old); extra < delays || extra > 10*delays {
		t.Errorf("%d delays took %d more bytes", delays, extra)
	}
	// A version 3 reader's flags: the delay bit is refused below version 4.
	forged := slices.Clone(v4)
	forged[1] = 3
	if _, err := DecodeProfile(forged); err == nil {
		t.Error("a version 3 profile with the delay flag was read")
	}
}
