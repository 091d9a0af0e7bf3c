package config

import (
	"reflect"
	"testing"
)

// TestMailboxDefaults: keys a mailbox entry leaves out take DefaultMailbox's
// values, entry by entry, and an explicit idle: false is kept.
func TestMailboxDefaults(t *testing.T) {
	const file = `feedback:
  mailboxes:
    - name: a
      address: imap.example.com:993
      username: u
      password: p
    - name: b
      address: 127.0.0.1:143
      tls: none
      username: u
      password: p
      idle: false
      schedule: "@every 5m"
`
	c, err := Parse("k.yaml", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	a := DefaultMailbox()
	a.Name, a.Address, a.Username, a.Password = "a", "imap.example.com:993", "u", "p"
	b := DefaultMailbox()
	b.Name, b.Address, b.TLS, b.Username, b.Password, b.Idle, b.Schedule = "b", "127.0.0.1:143", "none", "u", "p", false, "@every 5m"
	if want := []Mailbox{a, b}; !reflect.DeepEqual(c.Feedback.Mailboxes, want) {
		t.Errorf("mailboxes\n got %+v\nwant %+v", c.Feedback.Mailboxes, want)
	}
}

func TestMailboxResolvePassword(t *testing.T) {
	m := Mailbox{Name: "a", PasswordFile: "testdata/password.txt", Password: "ignored"}
	if pw, err := m.ResolvePassword(); err != nil || pw != "s3cret" {
		t.Errorf("file: %q, %v", pw, err)
	}
	m = Mailbox{Name: "a", Password: "inline"}
	if pw, err := m.ResolvePassword(); err != nil || pw != "inline" {
		t.Errorf("inline: %q, %v", pw, err)
	}
}
