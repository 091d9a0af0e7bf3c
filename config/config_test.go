package config

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// -update rewrites the .err files from the current output. Read the diff
// before committing it: the .err files are the specification.
var update = flag.Bool("update", false, "rewrite testdata/*.bad.yaml.err from the current messages")

// TestGoodConfigs parses every testdata/*.good.yaml and expects no error.
func TestGoodConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no good fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Load(f)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c == nil {
				t.Fatal("Load returned a nil config without an error")
			}
			if errs := c.Validate(); errs != nil {
				t.Errorf("parsed config does not validate on its own: %v", errs)
			}
		})
	}
}

// TestBadConfigs parses every testdata/*.bad.yaml and compares the complete
// error text, file and line included, with the sibling .err file.
func TestBadConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Load(f)
			if err == nil {
				t.Fatal("Load succeeded; want an error")
			}
			if c != nil {
				t.Error("Load returned a config along with its error")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want Errors: %v", err, err)
			}
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(f+".err", []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, rerr := os.ReadFile(f + ".err")
			if rerr != nil {
				t.Fatalf("no expected error text (run with -update to create it): %v", rerr)
			}
			if got != string(want) {
				t.Errorf("errors differ\ngot:\n%s\nwant:\n%s", got, want)
			}
			for _, e := range errs {
				if e.File != f {
					t.Errorf("error %q names file %q, want %q", e, e.File, f)
				}
			}
		})
	}
}

// TestExpectedErrorsHaveFixtures catches an .err file left behind when its
// fixture was renamed, which would otherwise silently stop being checked.
func TestExpectedErrorsHaveFixtures(t *testing.T) {
	errFiles, _ := filepath.Glob("testdata/*.err")
	for _, f := range errFiles {
		if _, err := os.Stat(strings.TrimSuffix(f, ".err")); err != nil {
			t.Errorf("%s has no fixture: %v", f, err)
		}
	}
}

// TestEmptyIsDefault: an empty file, or one holding only comments, is the
// defaults and nothing else.
func TestEmptyIsDefault(t *testing.T) {
	for _, data := range []string{"", "\n\n", "# nothing here\n  # indented too\n", "---\n", "~\n", "---\n---\n...\n"} {
		c, err := Parse("empty.yaml", []byte(data))
		if err != nil {
			t.Errorf("Parse(%q): %v", data, err)
			continue
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Errorf("Parse(%q) = %+v, want Default()", data, c)
		}
	}
}

func TestDefaultIsValid(t *testing.T) {
	if errs := Default().Validate(); errs != nil {
		t.Fatalf("Default() does not validate:\n%v", errs)
	}
}

// TestDecodesOverDefaults checks that a key the file sets replaces the
// default and the rest stay, including inside a section.
func TestDecodesOverDefaults(t *testing.T) {
	c, err := Load("testdata/minimal.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Hostname = "relay.example.com"
	want.Delivery.Upstream = "smtp.example.com:587"
	want.Delivery.TLS = TLSRequired
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
}

// TestEmptyClientNetworksStayEmpty: "client_networks: []" means nobody
// submits without AUTH, so it must replace the default loopback networks,
// not fall back to them.
func TestEmptyClientNetworksStayEmpty(t *testing.T) {
	c, err := Load("testdata/no-client-networks.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Intake.ClientNetworks) != 0 {
		t.Errorf("client_networks = %q, want empty", c.Intake.ClientNetworks)
	}
	if len(c.Intake.Users) != 1 || c.Intake.Users[0].Name != "crm" {
		t.Errorf("users = %+v", c.Intake.Users)
	}
}

// TestFullFixtureSetsEveryKey keeps full.good.yaml complete: each field of
// Config must differ there from its default, so every key is decoded and
// validated by at least one good fixture.
func TestFullFixtureSetsEveryKey(t *testing.T) {
	c, err := Load("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range sameLeaves(reflect.ValueOf(*c), reflect.ValueOf(*Default()), "") {
		// password and password_file exclude each other; the fixture uses
		// the file, and ResolvePassword's test covers the inline one.
		// Likewise store.postgres.password_file and password_env.
		if p != "delivery.password" && p != "store.postgres.password_env" {
			t.Errorf("full.good.yaml leaves %s at its default", p)
		}
	}
	if d := c.Intake.WriteTimeout; d != 90*time.Second {
		t.Errorf("write_timeout = %v, want 90s", d)
	}
	if d := c.Delivery.MaxQueueLifetime; d != 96*time.Hour {
		t.Errorf("max_queue_lifetime = %v, want 96h", d)
	}
}

// sameLeaves lists the key paths where a and b (structs of one type) hold
// equal values.
func sameLeaves(a, b reflect.Value, prefix string) []string {
	var same []string
	for i, f := range slices.Collect(a.Type().Fields()) {
		p := prefix + yamlKey(f)
		if f.Type.Kind() == reflect.Struct {
			same = append(same, sameLeaves(a.Field(i), b.Field(i), p+".")...)
			continue
		}
		if reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			same = append(same, p)
		}
	}
	return same
}

// TestReportsEveryProblemAtOnce: an unknown key, a value of the wrong type
// and values that fail validation, in one file, are all reported together
// and in file order.
func TestReportsEveryProblemAtOnce(t *testing.T) {
	const file = `listen: 127.0.0.1:2525
hostname: relay.example.com
intake:
  max_recipients: many
  max_line_length: 80
  client_networks: [10.0.0.0/33]
delivery:
  upstrem: smtp.example.com:587
  tls: sometimes
  retry_initial: 1h
  retry_max: 1m
log:
  level: chatty
`
	_, err := Parse("kadenz.yaml", []byte(file))
	errs, ok := errors.AsType[Errors](err)
	if !ok {
		t.Fatalf("error is %T, want Errors: %v", err, err)
	}
	want := []struct {
		line int
		text string
	}{
		{4, "intake.max_recipients: want a whole number"},
		{5, "intake.max_line_length: must be at least 1000"},
		{6, "intake.client_networks[0]:"},
		{8, `unknown key "upstrem" in delivery; did you mean "upstream"?`},
		{9, "delivery.tls:"},
		{11, "delivery.retry_max: 1m0s is shorter than retry_initial (1h0m0s)"},
		{13, "log.level:"},
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		e := errs[i]
		if e.File != "kadenz.yaml" || e.Line != w.line || !strings.Contains(e.Msg, w.text) {
			t.Errorf("error %d = %q, want kadenz.yaml:%d containing %q", i, e, w.line, w.text)
		}
	}
}

// TestReportsEveryUnknownKey: each unknown key is reported with its own
// line and section, at every depth, not just the first one.
func TestReportsEveryUnknownKey(t *testing.T) {
	const file = `lisen: ":25"
intake:
  users:
    - name: a
      pasword_hash: x
    - {name: b, hash: y}
  limits:
    max: 1
delivery:
  upstream: smtp.example.com:25
  tls_mode: required
lgo: {}
`
	_, err := Parse("k.yaml", []byte(file))
	errs, ok := errors.AsType[Errors](err)
	if !ok {
		t.Fatalf("error is %T, want Errors: %v", err, err)
	}
	want := []string{
		`k.yaml:1: unknown key "lisen"; did you mean "listen"?`,
		`k.yaml:5: unknown key "pasword_hash" in intake.users[0]; did you mean "password_hash"?`,
		`k.yaml:6: unknown key "hash" in intake.users[1]`,
		`k.yaml:7: unknown key "limits" in intake`,
		`k.yaml:11: unknown key "tls_mode" in delivery`,
		`k.yaml:12: unknown key "lgo"; did you mean "log"?`,
	}
	var got []string
	for _, e := range errs {
		if strings.Contains(e.Msg, "unknown key") {
			got = append(got, e.Error())
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("unknown keys reported:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestPasswordHashIsNeverEchoed: a password pasted where its hash belongs
// must not end up in logs through the error message.
func TestPasswordHashIsNeverEchoed(t *testing.T) {
	const secret = "Tr0ub4dor&3-horse"
	file := "intake:\n  allow_insecure_auth: true\n  users:\n    - name: crm\n      password_hash: " + secret + "\n"
	_, err := Parse("k.yaml", []byte(file))
	if err == nil {
		t.Fatal("a plain password was accepted as password_hash")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error message contains the password: %v", err)
	}
	if !strings.Contains(err.Error(), "k.yaml:5: intake.users[0].password_hash: is not a bcrypt hash") {
		t.Errorf("unexpected message: %v", err)
	}
}

func TestBcryptShape(t *testing.T) {
	const good = "$2a$10$gU0PA8VmlgEkhHDF8IYtnufF4beB3O9uk25ta/XRa2ygEPErM8p6W"
	for _, h := range []string{good, "$2b$" + good[4:], "$2y$" + good[4:]} {
		if r := badBcrypt(h); r != "" {
			t.Errorf("badBcrypt(%q) = %q, want accepted", h, r)
		}
	}
	for _, h := range []string{
		"",
		"hunter2",
		"$1$" + good[3:],            // bcrypt.Cost accepts a lower major version
		"$2x$" + good[4:],           // unknown minor version
		good[:59],                   // truncated
		good + "x",                  // too long
		good[:30] + "!" + good[31:], // outside bcrypt's alphabet
		"$2a$03$" + good[7:],        // cost below bcrypt's minimum
		"$2a$32$" + good[7:],        // cost above bcrypt's maximum
	} {
		if badBcrypt(h) == "" {
			t.Errorf("badBcrypt(%q) accepted it", h)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	for _, c := range []struct {
		e    Error
		want string
	}{
		{Error{"k.yaml", 3, "listen: bad"}, "k.yaml:3: listen: bad"},
		{Error{"k.yaml", 0, "listen: bad"}, "k.yaml: listen: bad"},
		{Error{"", 3, "listen: bad"}, "line 3: listen: bad"},
		{Error{"", 0, "listen: bad"}, "listen: bad"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("%#v.Error() = %q, want %q", c.e, got, c.want)
		}
	}
	es := Errors{{"a", 1, "x"}, {"a", 0, "y"}}
	if got := es.Error(); got != "a:1: x\na: y" {
		t.Errorf("Errors.Error() = %q", got)
	}
}

func TestValidateWithoutFile(t *testing.T) {
	c := Default()
	c.Log.Format = "xml"
	c.Delivery.Concurrency = 0
	errs := c.Validate()
	want := Errors{
		{Msg: "delivery.concurrency: must be from 1 to 1000"},
		{Msg: `log.format: "xml" is not one of text, json`},
	}
	if !reflect.DeepEqual(errs, want) {
		t.Errorf("Validate() = %#v, want %#v", errs, want)
	}
}

// TestDefaultValueLine: a problem with a value that came from the defaults
// has no line to point at, and must not borrow an unrelated one.
func TestDefaultValueLine(t *testing.T) {
	_, err := Parse("k.yaml", []byte("delivery:\n  retry_initial: 5h\n"))
	errs, _ := errors.AsType[Errors](err)
	if len(errs) != 1 || errs[0].Line != 2 {
		// retry_max (default 2h) is the key at fault, but only
		// retry_initial is in the file, so that is where to look.
		t.Fatalf("got %v, want one error at line 2", err)
	}
	_, err = Parse("k.yaml", []byte("delivery:\n  retry_max: 1s\n"))
	errs, _ = errors.AsType[Errors](err)
	if len(errs) != 1 || errs[0].Line != 2 || !strings.HasPrefix(errs[0].Msg, "delivery.retry_max:") {
		t.Fatalf("got %v, want one error about retry_max at line 2", err)
	}
}

func TestResolvePassword(t *testing.T) {
	d := Delivery{Password: "inline"}
	if pw, err := d.ResolvePassword(); err != nil || pw != "inline" {
		t.Errorf("inline: got %q, %v", pw, err)
	}
	d = Delivery{PasswordFile: "testdata/password.txt"}
	if pw, err := d.ResolvePassword(); err != nil || pw != "s3cret" {
		t.Errorf("file: got %q, %v; want the trimmed contents", pw, err)
	}
	d = Delivery{PasswordFile: "testdata/no-such-file"}
	if _, err := d.ResolvePassword(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want fs.ErrNotExist", err)
	}
	d = Delivery{PasswordFile: "testdata/empty-password.txt"}
	if pw, err := d.ResolvePassword(); err == nil {
		t.Errorf("empty file: got %q, want an error", pw)
	}
	d = Delivery{PasswordFile: "/dev/null"}
	if _, err := d.ResolvePassword(); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("device: got %v, want refusal", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yaml")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want fs.ErrNotExist", err)
	}
}

const examplePath = "../kadenz.example.yaml"

// TestExampleIsDefault: the shipped example parses, and since it documents
// the defaults it must be exactly Default(). Settings that are off by
// default are commented out in it and so deliberately change nothing.
func TestExampleIsDefault(t *testing.T) {
	c, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("example differs from Default():\n got %+v\nwant %+v", c, Default())
	}
}

// disabledSetting matches a commented-out setting in the example ("# key:
// value" or "# - item"), as opposed to prose.
var disabledSetting = regexp.MustCompile(`(?m)^(\s*)# (\s*(?:- |[a-z_]+:(?: |$)).*)$`)

// TestExampleCommentedKeys uncomments the example's disabled settings and
// decodes the result, so that a key misspelt in a comment is caught too.
// Validation is skipped: the files the example names exist only on a real
// server.
func TestExampleCommentedKeys(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	on := disabledSetting.ReplaceAll(data, []byte("$1$2"))
	if string(on) == string(data) {
		t.Fatal("the example has no commented-out settings; has its format changed?")
	}
	doc, errs := parseDocument("uncommented example", on)
	if errs != nil {
		t.Fatalf("%v\n%s", errs, on)
	}
	c := Default()
	if errs := decodeStrict("uncommented example", on, c, newIndex(doc)); errs != nil {
		t.Fatalf("keys commented out in the example:\n%v", errs)
	}
	// What the uncommented example still leaves at the default must be
	// shown with its default value, uncommented.
	for _, p := range sameLeaves(reflect.ValueOf(*c), reflect.ValueOf(*Default()), "") {
		key := p[strings.LastIndex(p, ".")+1:]
		if !regexp.MustCompile(`(?m)^\s*` + key + `:`).Match(data) {
			t.Errorf("the example does not show %s", p)
		}
	}
}

// keyPaths lists every key of the configuration as the reference names
// it: "intake.tls.cert_file", "intake.users[].name".
func keyPaths(t reflect.Type, prefix string) []string {
	var paths []string
	for f := range t.Fields() {
		p := prefix + yamlKey(f)
		switch {
		case f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]():
			paths = append(paths, keyPaths(f.Type, p+".")...)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			paths = append(paths, p)
			paths = append(paths, keyPaths(f.Type.Elem(), p+"[].")...)
		default:
			paths = append(paths, p)
		}
	}
	return paths
}

// TestReferenceDocumentsEveryKey keeps docs/configuration.md in step with
// Config: each key must appear there in backquotes.
func TestReferenceDocumentsEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range keyPaths(reflect.TypeFor[Config](), "") {
		if !strings.Contains(string(doc), "`"+p+"`") {
			t.Errorf("docs/configuration.md does not document `%s`", p)
		}
	}
}

// TestExampleShowsEveryKey: each key appears in the example, set or
// commented out, under its own name.
func TestExampleShowsEveryKey(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range keyPaths(reflect.TypeFor[Config](), "") {
		key := p[strings.LastIndexAny(p, ".]")+1:]
		if !regexp.MustCompile(`(?m)^\s*(#\s*)?(- )?` + key + `:`).Match(data) {
			t.Errorf("the example does not show %s", p)
		}
	}
}

func TestClosest(t *testing.T) {
	keys := []string{"listen", "data_dir", "hostname", "admin", "intake", "delivery", "log"}
	for key, want := range map[string]string{
		"lisen":    "listen",
		"datadir":  "data_dir",
		"hostnmae": "hostname",
		"smtp":     "",
		"x":        "",
		"logging":  "", // too far from "log" to be a safe guess
	} {
		if got := closest(key, keys); got != want {
			t.Errorf("closest(%q) = %q, want %q", key, got, want)
		}
	}
}

// FuzzParse feeds arbitrary bytes to Parse: it must not panic, and its
// answer must be consistent — a config with no error, or a non-empty
// Errors with no config.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	seeds = append(seeds, examplePath)
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &a [*a, *a]\nb: *a\n"))
	f.Add([]byte("intake: {users: [{name: a}, {name: a}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err == nil {
			if c == nil {
				t.Fatal("nil config without an error")
			}
			return
		}
		if c != nil {
			t.Fatal("config returned along with an error")
		}
		errs, ok := errors.AsType[Errors](err)
		if !ok || len(errs) == 0 {
			t.Fatalf("error %T %v is not a non-empty Errors", err, err)
		}
		for _, e := range errs {
			if e.Msg == "" || e.File != "fuzz.yaml" || e.Line < 0 {
				t.Fatalf("malformed error %#v", e)
			}
		}
	})
}
