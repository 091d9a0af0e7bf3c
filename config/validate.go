package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Limits that are not a matter of taste.
const (
	// MinLineLength is the least intake.max_line_length allowed. RFC 5321
	// 4.5.3.1.6 lets a text line be 1000 octets including CRLF, so a lower
	// limit would refuse mail that follows the standard.
	MinLineLength = 1000
	// MinSpoolThreshold and MaxSpoolThreshold bound intake.spool_threshold:
	// a message's header must fit below it, and memory per session grows
	// with it.
	MinSpoolThreshold = 64 << 10
	MaxSpoolThreshold = 64 << 20
	// MaxConcurrency caps delivery.concurrency: each worker holds an
	// upstream connection, and no smarthost welcomes more than this.
	MaxConcurrency = 1000
	// maxFileSize bounds the files a configuration names. PEM bundles and
	// passwords are kilobytes; the bound keeps a wrong path (a log file, a
	// disk image) from being read into memory.
	maxFileSize = 4 << 20
)

// The values accepted for log.level, log.format and delivery.tls: constant
// tables, never modified.
var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
	tlsModes   = []string{TLSNone, TLSOpportunistic, TLSRequired, TLSImplicit}
)

// Validate checks every value of c and returns every problem it finds, or
// nil. Each message starts with the key path it is about; File and Line are
// left empty, since c need not come from a file (Parse fills them in).
//
// Validate reads the files the configuration names — certificate and key,
// CA bundle, password file — so that check-config finds a missing or broken
// file rather than the first connection that needs it.
func (c *Config) Validate() Errors {
	return c.validate("", nil)
}

// validate is Validate with messages placed in file at the lines idx knows.
func (c *Config) validate(file string, idx *index) Errors {
	v := &validator{file: file, idx: idx}
	v.listenAddr("listen", c.Listen, false)
	if strings.TrimSpace(c.DataDir) == "" {
		v.errorf("data_dir", "must not be empty")
	}
	v.hostname("hostname", c.Hostname)
	v.admin(&c.Admin)
	v.intake(&c.Intake)
	v.governor(&c.Governor)
	v.headerTrust(c)
	v.delivery(&c.Delivery)
	v.feedback(&c.Feedback)
	v.oneOf("log.level", c.Log.Level, logLevels)
	v.oneOf("log.format", c.Log.Format, logFormats)
	v.positive("retention.bodies", int64(c.Retention.Bodies))
	v.positive("retention.decisions", int64(c.Retention.Decisions))
	v.store(&c.Store)
	v.distinctListeners(map[string]string{
		"listen":            c.Listen,
		"intake.tls_listen": c.Intake.TLSListen,
		"admin.listen":      c.Admin.Listen,
	})
	return v.errs
}

// validator collects problems, placing each at the line of its key.
type validator struct {
	file string
	idx  *index
	errs Errors
}

// errorf records a problem with the key at path.
func (v *validator) errorf(path, format string, args ...any) {
	v.errorNear(path, nil, format, args...)
}

// errorNear records a problem with the key at path, placed at the first of
// path and near that the file contains: a missing key is best reported
// where the thing that needs it is.
func (v *validator) errorNear(path string, near []string, format string, args ...any) {
	v.errs = append(v.errs, Error{
		File: v.file,
		Line: v.idx.line(append([]string{path}, near...)...),
		Msg:  path + ": " + fmt.Sprintf(format, args...),
	})
}

// listenAddr checks a host:port to listen on. The host may be empty (every
// interface) and the port 0 (a free port, which tests use).
func (v *validator) listenAddr(path, addr string, optional bool) {
	if addr == "" && optional {
		return
	}
	if _, port, ok := v.splitHostPort(path, addr); ok {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			v.errorf(path, "port %s is not a number from 0 to 65535", quoteShort(port))
		}
	}
}

// dialAddr checks a host:port to connect to: both parts are needed.
func (v *validator) dialAddr(path, addr string) {
	host, port, ok := v.splitHostPort(path, addr)
	if !ok {
		return
	}
	if host == "" {
		v.errorf(path, "%s has no host", quoteShort(addr))
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		v.errorf(path, "port %s is not a number from 1 to 65535", quoteShort(port))
	}
}

func (v *validator) splitHostPort(path, addr string) (host, port string, ok bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		reason := err.Error()
		if ae, ok := errors.AsType[*net.AddrError](err); ok {
			reason = ae.Err
		}
		v.errorf(path, "%s is not host:port (%s), e.g. \"127.0.0.1:2525\"", quoteShort(addr), reason)
		return "", "", false
	}
	return host, port, true
}

// hostname checks the name Kadenz gives itself in EHLO, its greeting and
// Received headers: a domain (RFC 5321 2.3.5) or an address literal
// (4.1.3). It ends up in protocol lines, so anything else could at best
// confuse peers and at worst inject commands.
func (v *validator) hostname(path, h string) {
	if h == "" {
		v.errorf(path, "must not be empty")
		return
	}
	if !validHostname(h) {
		v.errorf(path, "%s is not a host name (letters, digits, hyphens and dots) or an address literal like \"[192.0.2.1]\"", quoteShort(h))
	}
}

func validHostname(h string) bool {
	if lit, ok := strings.CutPrefix(h, "["); ok {
		lit, ok = strings.CutSuffix(lit, "]")
		if !ok {
			return false
		}
		if v6, ok := strings.CutPrefix(lit, "IPv6:"); ok {
			a, err := netip.ParseAddr(v6)
			return err == nil && a.Is6() && a.Zone() == ""
		}
		a, err := netip.ParseAddr(lit)
		return err == nil && a.Is4()
	}
	if len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

func (v *validator) oneOf(path, value string, allowed []string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	v.errorf(path, "%s is not one of %s", quoteShort(value), strings.Join(allowed, ", "))
}

func (v *validator) positive(path string, n int64) {
	if n <= 0 {
		v.errorf(path, "must be greater than 0")
	}
}

// distinctListeners reports two listeners on the same port of overlapping
// addresses, which would fail at startup with a less helpful "address
// already in use".
func (v *validator) distinctListeners(addrs map[string]string) {
	// Fixed order, so that messages are stable.
	order := []string{"listen", "intake.tls_listen", "admin.listen"}
	for i, a := range order {
		for _, b := range order[i+1:] {
			ha, pa, errA := net.SplitHostPort(addrs[a])
			hb, pb, errB := net.SplitHostPort(addrs[b])
			if errA != nil || errB != nil || pa != pb || pa == "0" {
				continue
			}
			if ha == hb || isWildcard(ha) || isWildcard(hb) {
				v.errorf(b, "uses the same port as %s (%s)", a, quoteShort(addrs[a]))
			}
		}
	}
}

func isWildcard(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::"
}

func (v *validator) admin(a *Admin) {
	v.listenAddr("admin.listen", a.Listen, true)
	// The admin API can release, hold and delete mail: off loopback it
	// must never answer without a credential. On loopback a token stays
	// optional, so "serve --admin 127.0.0.1:8025" works on a laptop.
	if a.Listen != "" && a.Token == "" && !IsLoopback(a.Listen) {
		v.errorNear("admin.token", []string{"admin.listen"}, "must be set when admin.listen is not a loopback address")
	}
}

func (v *validator) intake(in *Intake) {
	v.listenAddr("intake.tls_listen", in.TLSListen, true)
	hasCert := v.certificate(&in.TLS)
	if in.TLSListen != "" && !hasCert {
		v.errorf("intake.tls_listen", "needs a certificate: set intake.tls.cert_file and intake.tls.key_file")
	}

	for i, n := range in.ClientNetworks {
		path := fmt.Sprintf("intake.client_networks[%d]", i)
		p, err := netip.ParsePrefix(n)
		switch {
		case err != nil && isAddr(n):
			v.errorf(path, "%s is an address, not a network; write %s/%d", quoteShort(n), n, addrBits(n))
		case err != nil:
			v.errorf(path, "%s is not a network in CIDR notation, e.g. \"10.0.0.0/8\"", quoteShort(n))
		case p != p.Masked():
			// Go accepts 10.1.2.3/8; it means 10.0.0.0/8, which is rarely
			// what the writer had in mind, so make them say which.
			v.errorf(path, "%s has bits set beyond the prefix length; did you mean %s?", quoteShort(n), p.Masked())
		}
	}

	seen := make(map[string]int)
	for i, u := range in.Users {
		path := fmt.Sprintf("intake.users[%d]", i)
		switch first, dup := seen[u.Name]; {
		case u.Name == "":
			v.errorNear(path+".name", []string{path}, "must not be empty")
		case dup:
			v.errorNear(path+".name", []string{path}, "%s is already used by intake.users[%d]", quoteShort(u.Name), first)
		default:
			seen[u.Name] = i
		}
		// Never quote the value: if it is not a hash it may be a password.
		if reason := badBcrypt(u.PasswordHash); reason != "" {
			v.errorNear(path+".password_hash", []string{path}, "%s; store a bcrypt hash, never the password "+
				"(make one with: htpasswd -bnBC 10 '' PASSWORD | tr -d ':\\n')", reason)
		}
	}
	// go-smtp offers AUTH only over TLS unless told otherwise, so these
	// users could never log in.
	if len(in.Users) > 0 && !hasCert && !in.AllowInsecureAuth {
		v.errorf("intake.users", "no user can log in: AUTH needs TLS (set intake.tls) or allow_insecure_auth: true")
	}
	if len(in.Users) == 0 && len(in.ClientNetworks) == 0 {
		v.errorNear("intake.client_networks", []string{"intake"},
			"is empty and there are no users, so nobody can submit mail")
	}

	v.positive("intake.max_message_bytes", in.MaxMessageBytes)
	if in.SpoolThreshold < MinSpoolThreshold || in.SpoolThreshold > MaxSpoolThreshold {
		v.errorf("intake.spool_threshold", "must be from %d to %d bytes", MinSpoolThreshold, MaxSpoolThreshold)
	}
	v.positive("intake.max_recipients", int64(in.MaxRecipients))
	if in.MaxLineLength < MinLineLength {
		v.errorf("intake.max_line_length", "must be at least %d (RFC 5321 4.5.3.1.6)", MinLineLength)
	}
	v.positive("intake.max_connections", int64(in.MaxConnections))
	v.positive("intake.read_timeout", int64(in.ReadTimeout))
	v.positive("intake.write_timeout", int64(in.WriteTimeout))
	v.oneOf("intake.bare_newlines", in.BareNewlines, []string{BareNewlinesNormalize, BareNewlinesReject})
	v.positive("intake.max_connections_per_client", int64(in.MaxConnectionsPerClient))
	if in.ReservedConnections < 0 || (in.MaxConnections > 0 && in.ReservedConnections >= in.MaxConnections) {
		v.errorf("intake.reserved_connections", "must be at least 0 and less than intake.max_connections (%d), or nobody outside client_networks could connect", in.MaxConnections)
	}
	v.positive("intake.max_junk_commands", int64(in.MaxJunkCommands))
	v.positive("intake.idle_timeout", int64(in.IdleTimeout))
	v.positive("intake.auth_failure_limit", int64(in.AuthFailureLimit))
	v.positive("intake.auth_lockout", int64(in.AuthLockout))
}

func isAddr(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

func addrBits(s string) int {
	return netip.MustParseAddr(s).BitLen()
}

// certificate checks that the intake certificate is either absent or a
// readable, matching pair, and reports whether one is configured.
func (v *validator) certificate(t *TLS) bool {
	switch {
	case t.CertFile == "" && t.KeyFile == "":
		return false
	case t.KeyFile == "":
		v.errorNear("intake.tls.key_file", []string{"intake.tls.cert_file"}, "must be set with cert_file")
		return false
	case t.CertFile == "":
		v.errorNear("intake.tls.cert_file", []string{"intake.tls.key_file"}, "must be set with key_file")
		return false
	}
	certPEM, err := readSmallFile(t.CertFile)
	if err != nil {
		v.errorf("intake.tls.cert_file", "%v", err)
	}
	keyPEM, kerr := readSmallFile(t.KeyFile)
	if kerr != nil {
		v.errorf("intake.tls.key_file", "%v", kerr)
	}
	if err == nil && kerr == nil {
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			v.errorf("intake.tls.cert_file", "not a valid certificate for key_file: %s", strings.TrimPrefix(err.Error(), "tls: "))
		}
	}
	return true
}

// badBcrypt says why h is not a bcrypt hash, or returns "" if it is one.
// Beyond bcrypt.Cost, it wants the exact shape of a hash ($2a$, $2b$ or
// $2y$, 60 characters of bcrypt's alphabet): bcrypt.Cost alone accepts
// "$1$..." and other strings a password could plausibly be.
func badBcrypt(h string) string {
	if h == "" {
		return "is missing"
	}
	ok := len(h) == 60 && h[0] == '$' && h[1] == '2' && strings.ContainsRune("aby", rune(h[2])) && h[3] == '$' && h[6] == '$'
	if ok {
		for _, r := range h[7:] {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '/') {
				ok = false
				break
			}
		}
	}
	if !ok {
		return "is not a bcrypt hash"
	}
	if _, err := bcrypt.Cost([]byte(h)); err != nil {
		return "is not a valid bcrypt hash (" + strings.TrimPrefix(err.Error(), "crypto/bcrypt: ") + ")"
	}
	return ""
}

func (v *validator) delivery(d *Delivery) {
	if d.Upstream != "" {
		v.dialAddr("delivery.upstream", d.Upstream)
	}
	v.oneOf("delivery.tls", d.TLS, tlsModes)
	if d.CAFile != "" {
		if pem, err := readSmallFile(d.CAFile); err != nil {
			v.errorf("delivery.ca_file", "%v", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			v.errorf("delivery.ca_file", "%s holds no PEM certificate", quoteShort(d.CAFile))
		}
	}

	switch {
	case d.Password != "" && d.PasswordFile != "":
		v.errorNear("delivery.password_file", []string{"delivery.password"}, "set either password or password_file, not both")
	case d.PasswordFile != "":
		if _, err := readPasswordFile(d.PasswordFile); err != nil {
			v.errorf("delivery.password_file", "%v", err)
		}
	}
	hasPassword := d.Password != "" || d.PasswordFile != ""
	if d.Username != "" && !hasPassword {
		v.errorf("delivery.username", "needs a password or password_file")
	}
	if d.Username == "" && hasPassword {
		v.errorNear("delivery.username", []string{"delivery.password", "delivery.password_file"},
			"must be set when a password is")
	}

	if d.Concurrency < 1 || d.Concurrency > MaxConcurrency {
		v.errorf("delivery.concurrency", "must be from 1 to %d", MaxConcurrency)
	}
	v.positive("delivery.connect_timeout", int64(d.ConnectTimeout))
	v.positive("delivery.command_timeout", int64(d.CommandTimeout))
	v.positive("delivery.retry_initial", int64(d.RetryInitial))
	if d.RetryInitial > 0 && d.RetryMax < d.RetryInitial {
		v.errorNear("delivery.retry_max", []string{"delivery.retry_initial"},
			"%v is shorter than retry_initial (%v)", d.RetryMax, d.RetryInitial)
	}
	v.positive("delivery.max_queue_lifetime", int64(d.MaxQueueLifetime))
	// A delay_warning not shorter than max_queue_lifetime is no error:
	// the failure report simply comes first and no delay notice is sent.
	if d.DelayWarning < 0 {
		v.errorf("delivery.delay_warning", "must not be negative (0 turns delay notices off)")
	}
}

// ResolvePassword returns the password for the upstream: the contents of
// PasswordFile, trimmed of surrounding white space (the trailing newline an
// editor or echo adds), when it is set, else Password. Keeping the password
// in a file lets the configuration itself be world-readable or committed.
func (d *Delivery) ResolvePassword() (string, error) {
	if d.PasswordFile == "" {
		return d.Password, nil
	}
	pw, err := readPasswordFile(d.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("delivery password: %w", err)
	}
	return pw, nil
}

func readPasswordFile(name string) (string, error) {
	data, err := readSmallFile(name)
	if err != nil {
		return "", err
	}
	pw := strings.TrimSpace(string(data))
	if pw == "" {
		return "", fmt.Errorf("%s is empty", quoteShort(name))
	}
	return pw, nil
}

// readSmallFile reads a file named in the configuration. It refuses
// anything but a regular file — opening a FIFO would block, reading a device
// might never end — and anything over maxFileSize.
func readSmallFile(name string) ([]byte, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", quoteShort(name), pathErr(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", quoteShort(name))
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", quoteShort(name), pathErr(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", quoteShort(name), pathErr(err))
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s is larger than %d MiB", quoteShort(name), maxFileSize>>20)
	}
	return data, nil
}

// pathErr drops the operation and path from a *fs.PathError, which the
// message already names.
func pathErr(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}

func (v *validator) governor(g *Governor) {
	v.oneOf("governor.mode", g.Mode, []string{ModeEnforce, ModeShadow, ModeOff})
	classes := []string{ClassTransactional, ClassMarketing}
	v.oneOf("governor.default_class", g.DefaultClass, classes)
	for i, r := range g.SenderRules {
		p := fmt.Sprintf("governor.sender_rules[%d]", i)
		switch {
		case strings.TrimSpace(r.Sender) == "" && strings.TrimSpace(r.Header) == "":
			v.errorNear(p+".sender", []string{p}, "give a sender pattern, a header, or both (e.g. sender: \"*@news.example.com\")")
		case r.Sender != "":
			if _, err := path.Match(r.Sender, ""); err != nil || strings.TrimSpace(r.Sender) == "" {
				v.errorf(p+".sender", "%q is not a sender pattern (use * and ?, e.g. \"*@news.example.com\")", r.Sender)
			}
		}
		if r.Header != "" && !isHeaderName(r.Header) {
			v.errorf(p+".header", "%q is not a header field name (e.g. X-List-Administrivia)", r.Header)
		}
		if r.Value != "" {
			if r.Header == "" {
				v.errorf(p+".value", "needs a header to match against")
			} else if _, err := path.Match(r.Value, ""); err != nil {
				v.errorf(p+".value", "%q is not a pattern (use * and ?)", r.Value)
			}
		}
		v.oneOf(p+".class", r.Class, classes)
	}
	if g.HoldWindow < 0 {
		v.errorf("governor.hold_window", "must not be negative")
	}
	if _, err := time.LoadLocation(g.Timezone); err != nil || g.Timezone == "" {
		v.errorf("governor.timezone", "%q is not an IANA time zone (e.g. Europe/Berlin)", g.Timezone)
	}
	for key, n := range map[string]int{"per_day": g.Caps.PerDay, "per_week": g.Caps.PerWeek, "per_month": g.Caps.PerMonth} {
		if n < 0 {
			v.errorf("governor.caps."+key, "must not be negative (0 means no limit)")
		}
	}
	if g.Caps.MinGap < 0 {
		v.errorf("governor.caps.min_gap", "must not be negative")
	}
	for key, t := range map[string]string{"start": g.QuietHours.Start, "end": g.QuietHours.End} {
		if _, err := ParseClock(t); err != nil {
			v.errorf("governor.quiet_hours."+key, "%v", err)
		}
	}
	if !(g.Strictness > 0 && g.Strictness <= 10) {
		v.errorf("governor.strictness", "must be greater than 0 and at most 10")
	}
	if !(g.Holdout.Share >= 0 && g.Holdout.Share <= 1) {
		v.errorf("governor.holdout.share", "must be between 0 and 1")
	}
	if g.Holdout.Share > 0 && g.Holdout.Salt == "" {
		v.errorNear("governor.holdout.salt", []string{"governor.holdout.share"}, "must be set when holdout.share is above 0")
	}
	v.governorRules(g)
}

// ParseClock reads a local time of day, "HH:MM", as an offset from midnight.
func ParseClock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a time of day HH:MM", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// headerTrust checks governor.header_trust against the users and the
// header contract.
func (v *validator) headerTrust(c *Config) {
	users := map[string]bool{}
	for _, u := range c.Intake.Users {
		users[u.Name] = true
	}
	for i, r := range c.Governor.HeaderTrust {
		path := fmt.Sprintf("governor.header_trust[%d]", i)
		if len(r.Users) == 0 && len(r.Networks) == 0 {
			v.errorNear(path, []string{path}, "names no users and no networks, so it matches nobody")
		}
		for j, u := range r.Users {
			if !users[u] {
				v.errorf(fmt.Sprintf("%s.users[%d]", path, j), "%s is not one of intake.users", quoteShort(u))
			}
		}
		for j, n := range r.Networks {
			if p, err := netip.ParsePrefix(n); err != nil || p != p.Masked() {
				v.errorf(fmt.Sprintf("%s.networks[%d]", path, j), "%s is not a network in CIDR notation, e.g. \"10.0.0.0/8\"", quoteShort(n))
			}
		}
		if len(r.Headers) == 0 {
			v.errorNear(path+".headers", []string{path}, "is empty: list the X-Kadenz-* headers these submitters may set, or \"*\"")
		}
		for j, h := range r.Headers {
			known := h == "*"
			for _, k := range KadenzHeaders {
				known = known || strings.EqualFold(h, k)
			}
			if !known {
				v.errorf(fmt.Sprintf("%s.headers[%d]", path, j), "%s is not an X-Kadenz-* header Kadenz reads (%s) or \"*\"",
					quoteShort(h), strings.Join(KadenzHeaders, ", "))
			}
		}
	}
}

// isHeaderName reports whether s is a header field name (RFC 5322 2.2:
// printable ASCII other than colon).
func isHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' || s[i] == ':' {
			return false
		}
	}
	return s != ""
}
