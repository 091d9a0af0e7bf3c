package config

import (
	"crypto/x509"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Feedback configures what Kadenz learns from recipients: bounces,
// complaints, replies and engagement events, and what it does about them.
type Feedback struct {
	// TeamAddress receives human replies to marketing mail, forwarded with
	// their context. Empty: replies pause marketing but are not forwarded.
	TeamAddress string `yaml:"team_address"`
	// ReplyPause is how long marketing mail to a recipient pauses after
	// they wrote back in their own words, so a person can answer first.
	ReplyPause time.Duration `yaml:"reply_pause"`
	// SoftBounceLimit soft bounces within SoftBounceWindow count as a hard
	// bounce (the address is suppressed); 0 never escalates.
	SoftBounceLimit  int           `yaml:"soft_bounce_limit"`
	SoftBounceWindow time.Duration `yaml:"soft_bounce_window"`
	// VERP, when its domain is set, makes the return path of released
	// marketing mail prefix+ENVELOPEID@domain, so a bounce names its
	// envelope whatever the bouncing server writes.
	VERP VERP `yaml:"verp"`
	// EventIDRetention is how long the events API remembers an event ID,
	// so that a repeat within it is a duplicate; 0 remembers them forever.
	EventIDRetention time.Duration `yaml:"event_id_retention"`
	// Mailboxes are the IMAP folders that collect bounces, complaints and
	// replies, read one connection each, independently.
	Mailboxes []Mailbox `yaml:"mailboxes"`
}

// VERP is a variable envelope return path: prefix+ENVELOPEID@domain.
type VERP struct {
	Prefix string `yaml:"prefix"`
	// Domain is where bounces to the VERP address arrive (the bounce
	// mailbox's domain). Empty: VERP is off.
	Domain string `yaml:"domain"`
}

// defaultFeedback is Default's feedback section.
func defaultFeedback() Feedback {
	return Feedback{
		ReplyPause:       7 * 24 * time.Hour,
		SoftBounceLimit:  5,
		SoftBounceWindow: 30 * 24 * time.Hour,
		VERP:             VERP{Prefix: "bounce"},
		EventIDRetention: 30 * 24 * time.Hour,
	}
}

func (v *validator) feedback(f *Feedback) {
	if f.TeamAddress != "" {
		if a, err := mail.ParseAddress(f.TeamAddress); err != nil || a.Address != f.TeamAddress {
			v.errorf("feedback.team_address", "%s is not a bare email address such as team@example.com", quoteShort(f.TeamAddress))
		}
	}
	if f.ReplyPause < 0 {
		v.errorf("feedback.reply_pause", "must not be negative (0 means no pause)")
	}
	if f.SoftBounceLimit < 0 {
		v.errorf("feedback.soft_bounce_limit", "must not be negative (0 means soft bounces never suppress)")
	}
	if f.SoftBounceLimit > 0 && f.SoftBounceWindow <= 0 {
		v.errorNear("feedback.soft_bounce_window", []string{"feedback.soft_bounce_limit"}, "must be greater than 0 when soft_bounce_limit is set")
	}
	if p := f.VERP.Prefix; p == "" || strings.ContainsAny(p, "+@<> \t\"\\") {
		v.errorf("feedback.verp.prefix", "%s must be a plain local part without + or @, e.g. bounce", quoteShort(p))
	}
	if d := f.VERP.Domain; d != "" && !validHostname(d) {
		v.errorf("feedback.verp.domain", "%s is not a domain name", quoteShort(d))
	}
	if f.EventIDRetention < 0 {
		v.errorf("feedback.event_id_retention", "must not be negative (0 keeps event IDs forever)")
	}
	v.mailboxes(f.Mailboxes)
}

// TLS modes for a feedback mailbox.
const (
	MailboxTLSNone     = "none"     // plain IMAP: loopback addresses only
	MailboxTLSStartTLS = "starttls" // STARTTLS or fail (RFC 9051 section 6.2.1)
	MailboxTLSImplicit = "implicit" // TLS from the first byte, port 993 (RFC 8314)
)

// What happens to a message once it is handled.
const (
	ProcessedFlag   = "flag"   // set \Seen and $KadenzDone, and move it if move_to is set
	ProcessedDelete = "delete" // set \Deleted and expunge it
)

// Mailbox is one IMAP folder Kadenz reads feedback from. Unset keys take the
// values of DefaultMailbox.
type Mailbox struct {
	// Name identifies the mailbox in logs and in the store, which keeps its
	// reading position under it: renaming a mailbox starts it over.
	Name string `yaml:"name"`
	// Address is the IMAP server, host:port.
	Address string `yaml:"address"`
	// TLS is none (loopback only), starttls or implicit.
	TLS string `yaml:"tls"`
	// CAFile is an extra PEM bundle to trust for the server's certificate.
	CAFile string `yaml:"ca_file"`
	// InsecureSkipVerify disables certificate checks (testing only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// Username and Password log in (IMAP LOGIN); read the password with
	// ResolvePassword, which honours PasswordFile.
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// Folder is the folder read, INBOX by default.
	Folder string `yaml:"folder"`
	// Processed is what happens to a handled message: flag or delete.
	Processed string `yaml:"processed"`
	// MoveTo, with processed: flag, is a folder handled messages are moved
	// to (created if missing).
	MoveTo string `yaml:"move_to"`
	// Schedule is when to look for new mail, as a cron expression (five
	// fields, or a descriptor such as "@every 1m" or "@hourly"), in UTC
	// unless it starts with CRON_TZ=Area/City. With IDLE it is a safety net.
	Schedule string `yaml:"schedule"`
	// Idle waits for new mail with IMAP IDLE (RFC 2177) when the server
	// offers it, instead of only on the schedule.
	Idle bool `yaml:"idle"`
}

// DefaultMailbox holds the defaults of every feedback.mailboxes entry: the
// list's items cannot live in Default, so they live here, next to it.
func DefaultMailbox() Mailbox {
	return Mailbox{
		TLS:       MailboxTLSImplicit,
		Folder:    "INBOX",
		Processed: ProcessedFlag,
		Schedule:  "@every 1m",
		Idle:      true,
	}
}

// UnmarshalYAML starts each mailbox from DefaultMailbox, so that a file only
// names what it changes. Decoding goes through the caller's decoder, which
// keeps unknown keys errors.
func (m *Mailbox) UnmarshalYAML(unmarshal func(any) error) error {
	type plain Mailbox // without this method, so no recursion
	p := plain(DefaultMailbox())
	err := unmarshal(&p)
	*m = Mailbox(p)
	return err
}

// ParseSchedule reads a mailbox schedule: a standard five-field cron
// expression or a descriptor ("@every 1m", "@daily"), optionally preceded by
// CRON_TZ=Area/City.
func ParseSchedule(s string) (cron.Schedule, error) {
	return cron.ParseStandard(s)
}

// ResolvePassword returns the mailbox password: the trimmed contents of
// PasswordFile when that is set, else Password.
func (m *Mailbox) ResolvePassword() (string, error) {
	if m.PasswordFile == "" {
		return m.Password, nil
	}
	pw, err := readPasswordFile(m.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("mailbox %s password: %w", m.Name, err)
	}
	return pw, nil
}

var (
	mailboxTLSModes = []string{MailboxTLSNone, MailboxTLSStartTLS, MailboxTLSImplicit}
	processedModes  = []string{ProcessedFlag, ProcessedDelete}
)

func (v *validator) mailboxes(list []Mailbox) {
	// yaml.v3 leaves out of the list an entry whose UnmarshalYAML met a
	// value of the wrong type or an unknown key. Those are reported already;
	// checking the rest now would name the wrong entries and lines.
	inFile := 0
	for v.idx.line(fmt.Sprintf("feedback.mailboxes[%d]", inFile)) > 0 {
		inFile++
	}
	if v.idx != nil && inFile != len(list) {
		return
	}
	seen := make(map[string]int)
	for i, m := range list {
		p := fmt.Sprintf("feedback.mailboxes[%d]", i)
		near := []string{p}
		switch first, dup := seen[m.Name]; {
		case strings.TrimSpace(m.Name) == "":
			v.errorNear(p+".name", near, "must not be empty")
		case dup:
			v.errorNear(p+".name", near, "%s is already used by feedback.mailboxes[%d]", quoteShort(m.Name), first)
		default:
			seen[m.Name] = i
		}
		if m.Address == "" {
			v.errorNear(p+".address", near, "must be set (host:port of the IMAP server)")
		} else {
			v.dialAddr(p+".address", m.Address)
		}
		v.oneOf(p+".tls", m.TLS, mailboxTLSModes)
		// A password in clear may only cross the loopback interface.
		if m.TLS == MailboxTLSNone && m.Address != "" && !IsLoopback(m.Address) {
			v.errorNear(p+".tls", []string{p + ".address", p}, "none is only allowed for a loopback address; "+
				"use starttls or implicit for %s", quoteShort(m.Address))
		}
		if m.CAFile != "" {
			if pem, err := readSmallFile(m.CAFile); err != nil {
				v.errorf(p+".ca_file", "%v", err)
			} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
				v.errorf(p+".ca_file", "%s holds no PEM certificate", quoteShort(m.CAFile))
			}
		}
		if m.Username == "" {
			v.errorNear(p+".username", near, "must be set")
		}
		switch {
		case m.Password != "" && m.PasswordFile != "":
			v.errorNear(p+".password_file", []string{p + ".password"}, "set either password or password_file, not both")
		case m.PasswordFile != "":
			if _, err := readPasswordFile(m.PasswordFile); err != nil {
				v.errorf(p+".password_file", "%v", err)
			}
		case m.Password == "":
			v.errorNear(p+".password", near, "must be set, or password_file")
		}
		if strings.TrimSpace(m.Folder) == "" {
			v.errorNear(p+".folder", near, "must not be empty")
		}
		v.oneOf(p+".processed", m.Processed, processedModes)
		if m.MoveTo != "" {
			if m.Processed == ProcessedDelete {
				v.errorNear(p+".move_to", []string{p + ".processed"}, "only applies with processed: flag")
			}
			if m.MoveTo == m.Folder {
				v.errorf(p+".move_to", "is the folder being read (%s)", quoteShort(m.Folder))
			}
		}
		if _, err := ParseSchedule(m.Schedule); err != nil {
			v.errorNear(p+".schedule", near, "%s is not a cron expression (%v); e.g. \"@every 1m\" or \"*/5 * * * *\"",
				quoteShort(m.Schedule), err)
		}
	}
}
