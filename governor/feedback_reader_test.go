package governor

import (
	"bytes"
	"io"
	"log"
	"net"
	"os"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"kadenz/config"
)

// TestRelayReadsFeedbackMailbox: a relay configured with a feedback mailbox
// reads the bounce waiting in it and moves its cursor, and shuts down with
// the reader connected (in IDLE).
func TestRelayReadsFeedbackMailbox(t *testing.T) {
	mem := imapmemserver.New()
	user := imapmemserver.NewUser("bounces", "pw")
	user.Create("INBOX", nil)
	mem.AddUser(user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		InsecureAuth: true,
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapMove: {}},
		Logger:       log.New(io.Discard, "", 0),
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	bounce, err := os.ReadFile("feedback/report/testdata/dsn-rfc3464-hard.eml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := user.Append("INBOX", bytes.NewReader(bounce), &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t, "")
	cfg.Admin.Listen = "127.0.0.1:0"
	m := config.DefaultMailbox()
	m.Name, m.Address, m.TLS, m.Username, m.Password = "bounces", l.Addr().String(), config.MailboxTLSNone, "bounces", "pw"
	cfg.Feedback.Mailboxes = []config.Mailbox{m}
	r := startRelay(t, cfg)
	waitFor(t, "the bounce to be read", func() bool {
		_, last, err := r.DB().MailboxState("bounces")
		return err == nil && last == 1
	})
	// The reader reports each look at the mailbox to the health metrics.
	waitFor(t, "the mailbox's health metric", func() bool {
		return value(scrape(t, r), "kadenz_mailbox_last_success_timestamp_seconds", "mailbox", "bounces") > 0
	})
}
