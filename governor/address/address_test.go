package address

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	long := strings.Repeat("a", 65)
	cases := []struct {
		addr   string
		utf8   bool
		ok     bool
		reason string // substring of the error
	}{
		{"ann@example.com", false, true, ""},
		{"Ann.Lee+news@mail.example.co.uk", false, true, ""},
		{"o'brien@example.ie", false, true, ""},
		{`"john doe"@example.com`, false, true, ""},
		{`"a\"b"@example.com`, false, true, ""},
		{"user@[192.0.2.1]", false, true, ""},
		{"user@[IPv6:2001:db8::1]", false, true, ""},
		{"zoë@example.com", true, true, ""},
		{"用户@例子.广告", true, true, ""},
		{"zoë@example.com", false, false, "SMTPUTF8"},
		{"", false, false, "empty"},
		{"ann", false, false, "no @domain"},
		{"@mx.example.org", false, false, "empty local part"},
		{"@smtp.example.net:user@server", false, false, "not allowed in local part"},
		{"ann@", false, false, "empty domain"},
		{"ann@example..com", false, false, "empty label"},
		{"ann@-example.com", false, false, "hyphen"},
		{"ann@example.com.", false, false, "ends with a dot"},
		{".ann@example.com", false, false, "starts with a dot"},
		{"ann..lee@example.com", false, false, "empty atom"},
		{"ann lee@example.com", false, false, "not allowed"},
		{"ann\x00@example.com", true, false, "not allowed"},
		{"ann\x1b@example.com", true, false, "not allowed"},
		{"ann@exa\x07mple.com", true, false, "not allowed in domain"},
		{"ann@example.com。", true, false, "not allowed in domain"},
		{`"ann@example.com`, false, false, "unterminated"},
		{`"a` + "\x01" + `"@example.com`, false, false, "control"},
		{long + "@example.com", false, false, "local part longer than 64"},
		{"a@" + strings.Repeat("b", 64) + ".com", false, false, "label longer than 63"},
		{"a@" + strings.Repeat("bbbbbbbbb.", 26) + "com", false, false, "longer than 254"},
		{"ann@[300.1.1.1]", false, false, "bad address literal"},
		{"ann@[IPv6:zz]", false, false, "bad IPv6"},
		{"ann@example.com\xff", true, false, "UTF-8"},
	}
	for _, c := range cases {
		err := Check(c.addr, c.utf8)
		if c.ok {
			if err != nil {
				t.Errorf("Check(%q, %v) = %v, want nil", c.addr, c.utf8, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("Check(%q, %v) = nil, want an error with %q", c.addr, c.utf8, c.reason)
			continue
		}
		if !strings.Contains(err.Error(), c.reason) {
			t.Errorf("Check(%q, %v) = %v, want it to say %q", c.addr, c.utf8, err, c.reason)
		}
	}
}

func TestNeedsUTF8(t *testing.T) {
	if err := Check("jörg@example.de", false); !errors.Is(err, ErrNeedsUTF8) {
		t.Errorf("Check without SMTPUTF8 = %v, want ErrNeedsUTF8", err)
	}
	if err := Check("jörg@exa mple.de", false); errors.Is(err, ErrNeedsUTF8) {
		t.Errorf("a syntax error must not read as a mere lack of SMTPUTF8: %v", err)
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{"ann@example.com", `"a b"@x.y`, "zoë@例子.广告", "a@[IPv6:::1]", "@x:y@z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := Check(s, true)
		if err != nil {
			return
		}
		// Whatever passes is bounded, has one domain part and no controls.
		if len(s) > MaxAddress || Domain(s) == "" {
			t.Fatalf("accepted %q", s)
		}
		for _, r := range s {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("accepted a control character in %q", s)
			}
		}
		if IsASCII(s) && Check(s, false) != nil {
			t.Fatalf("ASCII %q valid only with SMTPUTF8", s)
		}
	})
}
