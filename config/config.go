// Package config defines Kadenz's configuration file: its format (YAML), its
// defaults, and its validation.
//
// Decoding is strict: an unknown key is an error, and every problem found —
// syntax, unknown keys, bad values — is reported with the file and line it
// comes from, all at once, so an admin can fix a file in one pass.
// Defaults live in one place, Default; a file only needs the keys it changes.
//
// The package does not open listeners, read certificates for serving or touch
// the data directory: it only describes and checks. Other packages turn a
// *Config into running components.
package config

import (
	"strings"
	"time"
)

// Config is the whole configuration of one Kadenz daemon.
type Config struct {
	// Listen is the SMTP submission address (plain, with STARTTLS if TLS is set).
	Listen string `yaml:"listen"`
	// DataDir holds the database and, without an upstream, the outbox.
	DataDir string `yaml:"data_dir"`
	// Hostname is used in the SMTP greeting, EHLO to the upstream and Received headers.
	Hostname string `yaml:"hostname"`

	// The sections: admin API, the SMTP server CRMs submit to, delivery to
	// the upstream, logging.
	Admin    Admin    `yaml:"admin"`
	Intake   Intake   `yaml:"intake"`
	Governor Governor `yaml:"governor"`
	Delivery Delivery `yaml:"delivery"`
	Log      Log      `yaml:"log"`
	Feedback Feedback `yaml:"feedback"`

	// Retention bounds how long personal data is kept.
	Retention Retention `yaml:"retention"`

	// Store says where the state is kept: bbolt in data_dir, or a
	// database several nodes share.
	Store Store `yaml:"store"`
}

// Retention says how long Kadenz keeps what it no longer needs.
type Retention struct {
	// Bodies: a message's raw bytes are purged this long after its last
	// envelope reached a final state (delivered, failed, suppressed).
	Bodies time.Duration `yaml:"bodies"`
	// Decisions: an envelope's decision records (scores, explanations)
	// are purged this long after it reached a final state.
	Decisions time.Duration `yaml:"decisions"`
}

// Governor modes.
const (
	ModeEnforce = "enforce" // hold marketing mail and act on decisions
	ModeShadow  = "shadow"  // decide and record, but release everything at once
	ModeOff     = "off"     // pass all mail through, decide nothing
)

// Message classes (the header contract's X-Kadenz-Class values).
const (
	ClassTransactional = "transactional"
	ClassMarketing     = "marketing"
)

// Governor configures how marketing mail is held and decided.
type Governor struct {
	// Mode is enforce, shadow or off.
	Mode string `yaml:"mode"`
	// DefaultClass applies to mail that neither says its class nor carries
	// a bulk marker nor matches a sender rule. Transactional by default:
	// in doubt, pass through.
	DefaultClass string `yaml:"default_class"`
	// SenderRules classify by envelope sender, first match wins.
	SenderRules []SenderRule `yaml:"sender_rules"`
	// HoldWindow is how long marketing mail waits before its first
	// decision, so that messages arriving close together compete.
	HoldWindow time.Duration `yaml:"hold_window"`
	// Timezone is the recipients' zone when neither the message
	// (X-Kadenz-Timezone) nor the profile says (IANA name).
	Timezone string `yaml:"timezone"`
	// Caps are hard limits per recipient on marketing releases.
	Caps Caps `yaml:"caps"`
	// QuietHours is a daily period, in the recipient's local time, with
	// no marketing releases ("21:00" to "08:00"); equal times mean none.
	QuietHours QuietHours `yaml:"quiet_hours"`
	// Strictness scales fatigue against relevance: above 1 sends less,
	// below 1 more.
	Strictness float64 `yaml:"strictness"`
	// Holdout is the share of recipients who get all marketing mail
	// undelayed, so the governor's effect is measured against them.
	Holdout Holdout `yaml:"holdout"`
	// SendWindows are cron expressions (five fields, recipient's local
	// time) whose minutes allow marketing releases; empty allows any time.
	SendWindows []string `yaml:"send_windows"`
	// CampaignRules set caps, exemptions and review per campaign or
	// sender; first match wins (see rules.go).
	CampaignRules []CampaignRule `yaml:"campaign_rules"`
	// Chores are the governor's periodic jobs.
	Chores Chores `yaml:"chores"`
	// HeaderTrust says whose X-Kadenz-* headers are believed; empty:
	// everyone's (see headers.go).
	HeaderTrust []HeaderTrust `yaml:"header_trust"`
}

// HeaderTrust lets the submitters it matches (an authenticated user in
// Users, or a client address in Networks) set the X-Kadenz-* headers in
// Headers. The first rule that matches a submission applies; a submission
// no rule matches has every X-Kadenz-* header ignored.
type HeaderTrust struct {
	Users    []string `yaml:"users"`
	Networks []string `yaml:"networks"`
	// Headers are X-Kadenz-* field names (any letter case), or "*" for all.
	Headers []string `yaml:"headers"`
}

// KadenzHeaders are the X-Kadenz-* fields of the header contract
// (DESIGN.md), in canonical form.
var KadenzHeaders = []string{"X-Kadenz-Class", "X-Kadenz-Campaign", "X-Kadenz-Topics", "X-Kadenz-Priority",
	"X-Kadenz-Expires", "X-Kadenz-Not-Before", "X-Kadenz-Timezone", "X-Kadenz-Value"}

// Trusts reports whether the rule lets its submitters set header (an
// X-Kadenz-* field name, any case).
func (t *HeaderTrust) Trusts(header string) bool {
	for _, h := range t.Headers {
		if h == "*" || strings.EqualFold(h, header) {
			return true
		}
	}
	return false
}

// SenderRule gives mail that matches it a class: mail from a matching
// envelope sender, or with a header field whose value matches, or both
// (every condition the rule has must hold).
type SenderRule struct {
	// Sender is a pattern for the envelope sender, with * and ? as in
	// path.Match, compared case-insensitively: "*@news.example.com".
	// Empty: any sender.
	Sender string `yaml:"sender"`
	// Header names a header field and Value is a pattern for its value
	// (like Sender's; empty Value: the field is present). A list manager's
	// administrative mail, which carries the same List-Id and envelope
	// sender as the list's posts, is told apart this way.
	Header string `yaml:"header"`
	Value  string `yaml:"value"`
	Class  string `yaml:"class"`
}

// Caps are per-recipient limits on marketing releases over rolling
// windows; 0 means no limit.
type Caps struct {
	PerDay   int           `yaml:"per_day"`
	PerWeek  int           `yaml:"per_week"`
	PerMonth int           `yaml:"per_month"`
	MinGap   time.Duration `yaml:"min_gap"`
}

// QuietHours are two local times of day, "HH:MM".
type QuietHours struct {
	Start string `yaml:"start"`
	End   string `yaml:"end"`
}

// Holdout configures the measurement group.
type Holdout struct {
	// Share of recipients in the holdout, 0 to 1.
	Share float64 `yaml:"share"`
	// Salt makes the stable hash of an address specific to this
	// installation; required when Share > 0.
	Salt string `yaml:"salt"`
}

// Admin configures the admin/metrics HTTP listener.
type Admin struct {
	// Listen is the admin HTTP address; empty means off.
	Listen string `yaml:"listen"`
	// Token is the bearer token the admin API requires.
	Token string `yaml:"token"`
}

// Intake configures the SMTP server that CRMs submit to.
type Intake struct {
	// TLSListen is an optional implicit-TLS (submissions, RFC 8314) address.
	TLSListen string `yaml:"tls_listen"`
	// TLS holds the certificate used for STARTTLS and the implicit-TLS port.
	TLS TLS `yaml:"tls"`
	// AllowInsecureAuth permits AUTH before TLS (off by default: passwords
	// would cross the network in clear).
	AllowInsecureAuth bool `yaml:"allow_insecure_auth"`
	// ClientNetworks may submit without AUTH (CIDR notation). A list in
	// the file replaces the default one, so an empty list (or an empty
	// value) means nobody may: every client must log in. Test with len,
	// not against nil.
	ClientNetworks []string `yaml:"client_networks"`
	// Users may submit after AUTH PLAIN or LOGIN.
	Users []User `yaml:"users"`

	// Limits on clients: the largest message and the most recipients
	// accepted, the longest line (in bytes, at least MinLineLength), the
	// most simultaneous connections, and how long to wait for a client to
	// send a command or data (read) or to take a reply (write).
	MaxMessageBytes int64         `yaml:"max_message_bytes"`
	MaxRecipients   int           `yaml:"max_recipients"`
	MaxLineLength   int           `yaml:"max_line_length"`
	MaxConnections  int           `yaml:"max_connections"`
	ReadTimeout     time.Duration `yaml:"read_timeout"`
	WriteTimeout    time.Duration `yaml:"write_timeout"`
	// SpoolThreshold: a message longer than this many bytes is written to
	// the data directory's spool as it arrives and stored in parts, not
	// held in memory; its header must end within it.
	SpoolThreshold int64 `yaml:"spool_threshold"`

	// BareNewlines says what to do with a bare LF in DATA: "normalize"
	// (treat it as a line end, store CRLF; Postfix 3.9's default
	// smtpd_forbid_bare_newline = normalize) or "reject" (554 5.6.0).
	// Either way DATA ends only at CRLF.CRLF.
	BareNewlines string `yaml:"bare_newlines"`
	// AddMissingHeaders adds a Message-ID and a Date to a submission that
	// lacks them (RFC 5322 3.6 requires Date; receivers penalise mail
	// without Message-ID), as Postfix does for its own clients. Every
	// client that may submit is one of ours (a user or a client network).
	AddMissingHeaders bool `yaml:"add_missing_headers"`
	// Fair slots (docs/configuration.md): connections one address outside
	// ClientNetworks may hold, slots of MaxConnections only ClientNetworks
	// may take, commands a session may spend outside a mail transaction
	// (Postfix's smtpd_junk_command_limit) and how long it may stay there,
	// and failed AUTH attempts per address and per user name before AUTH
	// is refused for the lockout window.
	MaxConnectionsPerClient int           `yaml:"max_connections_per_client"`
	ReservedConnections     int           `yaml:"reserved_connections"`
	MaxJunkCommands         int           `yaml:"max_junk_commands"`
	IdleTimeout             time.Duration `yaml:"idle_timeout"`
	AuthFailureLimit        int           `yaml:"auth_failure_limit"`
	AuthLockout             time.Duration `yaml:"auth_lockout"`
}

// Values of intake.bare_newlines.
const (
	BareNewlinesNormalize = "normalize"
	BareNewlinesReject    = "reject"
)

// TLS names a certificate (followed by any intermediates) and its private
// key, both PEM files. Both are set or neither; relative paths are relative
// to the working directory.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// User is one account allowed to submit after AUTH.
type User struct {
	Name string `yaml:"name"`
	// PasswordHash is a bcrypt hash ($2a$, $2b$ or $2y$); never a plain password.
	PasswordHash string `yaml:"password_hash"`
}

// TLS modes for the connection to the upstream.
const (
	TLSNone          = "none"          // plain SMTP, never STARTTLS
	TLSOpportunistic = "opportunistic" // STARTTLS when offered
	TLSRequired      = "required"      // STARTTLS or fail (temporarily)
	TLSImplicit      = "implicit"      // TLS from the first byte (port 465)
)

// Delivery configures how released mail leaves Kadenz.
type Delivery struct {
	// Upstream is the smarthost (host:port). Empty: released mail is written
	// as .eml files into <data_dir>/outbox instead.
	Upstream string `yaml:"upstream"`
	// TLS is one of none, opportunistic, required, implicit.
	TLS string `yaml:"tls"`
	// CAFile is an extra PEM bundle to trust for the upstream's certificate.
	CAFile string `yaml:"ca_file"`
	// InsecureSkipVerify disables certificate checks (testing only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// Username and Password authenticate to the upstream (AUTH PLAIN) when set.
	// Read the password with ResolvePassword, which honours PasswordFile.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// PasswordFile is read for the password instead of Password, trimmed.
	PasswordFile string `yaml:"password_file"`

	// Concurrency is the number of delivery workers (and upstream connections).
	// ConnectTimeout bounds connecting to the upstream, CommandTimeout each
	// SMTP command sent to it.
	Concurrency    int           `yaml:"concurrency"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	CommandTimeout time.Duration `yaml:"command_timeout"`
	// RetryInitial is the first retry delay after a temporary failure; each
	// later one doubles, up to RetryMax, with jitter.
	RetryInitial time.Duration `yaml:"retry_initial"`
	RetryMax     time.Duration `yaml:"retry_max"`
	// MaxQueueLifetime is how long a message may keep failing temporarily
	// before it fails for good (RFC 5321 4.5.4.1 suggests 4-5 days).
	MaxQueueLifetime time.Duration `yaml:"max_queue_lifetime"`
	// DelayWarning is how long after its first delivery attempt a message
	// still being retried earns its sender one delay notice (Postfix's
	// delay_warning_time); 0 turns delay notices off.
	DelayWarning time.Duration `yaml:"delay_warning"`
}

// Log configures structured logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
	// Pseudonymise replaces email addresses in log attributes with a keyed
	// hash (the key is kept in the database), keeping the domain.
	Pseudonymise bool `yaml:"pseudonymise"`
}

// Default returns the embedded defaults: a loopback-only relay writing to
// the outbox, usable with no file at all.
func Default() *Config {
	return &Config{
		Listen:   "127.0.0.1:2525",
		DataDir:  "./kadenz-data",
		Hostname: "localhost",
		Intake: Intake{
			ClientNetworks:    []string{"127.0.0.0/8", "::1/128"},
			MaxMessageBytes:   25 << 20,
			SpoolThreshold:    1 << 20,
			MaxRecipients:     1000,
			MaxLineLength:     2000,
			MaxConnections:    200,
			ReadTimeout:       5 * time.Minute,
			WriteTimeout:      5 * time.Minute,
			BareNewlines:      BareNewlinesNormalize,
			AddMissingHeaders: true,

			MaxConnectionsPerClient: 10,
			ReservedConnections:     20,
			MaxJunkCommands:         20,
			IdleTimeout:             5 * time.Minute,
			AuthFailureLimit:        5,
			AuthLockout:             15 * time.Minute,
		},
		Governor: Governor{
			Mode:         ModeEnforce,
			DefaultClass: ClassTransactional,
			HoldWindow:   5 * time.Minute,
			Timezone:     "UTC",
			Caps:         Caps{PerDay: 6, PerWeek: 30}, // a ceiling; the model sets the volume (docs/simulation.md, round 4)
			QuietHours:   QuietHours{Start: "21:00", End: "08:00"},
			Strictness:   0.085, // docs/simulation.md, round 5
			Chores:       Chores{Sweep: "*/5 * * * *", Retention: "@hourly"},
		},
		Delivery: Delivery{
			TLS:              TLSOpportunistic,
			Concurrency:      16,
			ConnectTimeout:   30 * time.Second,
			CommandTimeout:   5 * time.Minute,
			RetryInitial:     time.Minute,
			RetryMax:         2 * time.Hour,
			MaxQueueLifetime: 5 * 24 * time.Hour,
			// Postfix's default is off; sendmail's is 4h. A CRM whose
			// password reset is stuck should hear of it the same working
			// day, not after the five-day queue lifetime.
			DelayWarning: 4 * time.Hour,
		},
		Log:       Log{Level: "info", Format: "text"},
		Feedback:  defaultFeedback(),
		Retention: Retention{Bodies: 7 * 24 * time.Hour, Decisions: 90 * 24 * time.Hour},
		Store:     Store{Backend: BackendBbolt},
	}
}
