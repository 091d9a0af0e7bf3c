package intake

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"
)

// eventLog records the Count events of a server.
type eventLog struct {
	mu sync.Mutex
	n  map[string]int
}

func (e *eventLog) count(ev string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n[ev]++
}

func (e *eventLog) get(ev string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n[ev]
}

// startSlotServer runs a Server on 127.0.0.1 with opts completed by
// defaults, and returns its address.
func startSlotServer(t *testing.T, opts Options) (string, *eventLog) {
	t.Helper()
	events := &eventLog{n: map[string]int{}}
	opts.Hostname = "kadenz.test"
	opts.MaxRecipients = 10
	opts.ReadTimeout, opts.WriteTimeout = 10*time.Second, 10*time.Second
	opts.Count = events.count
	opts.Accept = func(context.Context, *Submission) (string, error) { return "id1", nil }
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l, false)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String(), events
}

// dialFrom opens an SMTP session from a given loopback address (all of
// 127.0.0.0/8 reaches the loopback interface on Linux) and reads the
// greeting. A refused connection returns the 421 as an error.
func dialFrom(t *testing.T, from, addr string) (*smtp.Client, error) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout = 10 * time.Second
	if err := c.Hello("client.test"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// The attack: outsiders holding connections open with NOOP. With
// eight of them in, a client on a client network still gets a slot and
// submits; a ninth outsider, or a fifth from one address, is refused;
// and each idle outsider is closed once it has sent its share of commands.
func TestIdleOutsidersCannotLockOutClientNetwork(t *testing.T) {
	addr, events := startSlotServer(t, Options{
		ClientNetworks:          []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		MaxConnections:          10,
		ReservedConnections:     2,
		MaxConnectionsPerClient: 4,
		MaxJunkCommands:         6,
	})
	var outsiders []*smtp.Client
	for i := range 8 {
		from := []string{"127.0.0.2", "127.0.0.3"}[i%2]
		c, err := dialFrom(t, from, addr)
		if err != nil {
			t.Fatalf("outsider %d from %s refused: %v", i, from, err)
		}
		outsiders = append(outsiders, c)
		if err := c.Noop(); err != nil {
			t.Fatalf("outsider %d NOOP: %v", i, err)
		}
	}
	// A fifth connection from one outside address is refused...
	if _, err := dialFrom(t, "127.0.0.2", addr); smtpCode(err) != 421 {
		t.Errorf("fifth connection from one outsider: %v, want 421", err)
	}
	// ...and so is any further outsider: the other two slots are reserved.
	if _, err := dialFrom(t, "127.0.0.4", addr); smtpCode(err) != 421 {
		t.Errorf("ninth outsider: %v, want 421", err)
	}
	if events.get(EventRefusedOutsiders) == 0 {
		t.Errorf("no refused_outsiders event: %v", events.n)
	}
	// The CRM on the client network gets in and submits, twice over.
	for range 2 {
		crm, err := dialFrom(t, "127.0.0.1", addr)
		if err != nil {
			t.Fatalf("client-network sender locked out: %v", err)
		}
		if err := crm.SendMail("crm@shop.test", []string{"ann@example.test"}, strings.NewReader("Subject: hi\r\n\r\nhello\r\n")); err != nil {
			t.Fatalf("client-network sender: %v", err)
		}
		defer crm.Close()
	}
	// Each outsider has sent EHLO and one NOOP; four more NOOPs are
	// allowed (six commands in all), the next one ends the session with 421.
	for i, c := range outsiders {
		var err error
		n := 0
		for ; n < 10 && err == nil; n++ {
			err = c.Noop()
		}
		if smtpCode(err) != 421 || n != 5 {
			t.Errorf("outsider %d: NOOP %d got %v, want 421 at NOOP 5", i, n, err)
		}
		c.Close()
	}
	if got := events.get(EventJunkCommands); got != 8 {
		t.Errorf("%d junk_commands events, want 8", got)
	}
	// Their slots are free again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := dialFrom(t, "127.0.0.4", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outsider slots not freed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A session that keeps sending NOOP outside a transaction is closed after
// IdleTimeout, though each command arrives well within ReadTimeout. On a
// loaded machine the limit may pass before the first NOOP; such an attempt
// proves nothing and is made again.
func TestIdleTimeoutDespiteNoop(t *testing.T) {
	addr, events := startSlotServer(t, Options{
		ClientNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		MaxConnections: 4,
		IdleTimeout:    time.Second,
	})
	for attempt := 1; ; attempt++ {
		c, err := dialFrom(t, "127.0.0.2", addr)
		noops := 0
		deadline := time.Now().Add(20 * time.Second)
		for err == nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			if err = c.Noop(); err == nil {
				noops++
			}
		}
		if c != nil {
			c.Close()
		}
		if smtpCode(err) != 421 {
			t.Fatalf("NOOP kept the session open: %v, want 421", err)
		}
		if noops > 0 {
			break
		}
		if attempt == 3 {
			t.Fatalf("the idle limit passed before the first NOOP in %d attempts", attempt)
		}
	}
	if events.get(EventIdle) == 0 {
		t.Errorf("no idle event: %v", events.n)
	}
}

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func authFrom(t *testing.T, from, addr, user, password string) error {
	t.Helper()
	c, err := dialFrom(t, from, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.Auth(sasl.NewPlainClient("", user, password))
}

// AUTH lockout on an injected clock: after the limit of failures from one
// address, even the right password is refused with 454 from there, and
// from elsewhere for the user name guessed at; both lift once the window
// has passed.
func TestAuthLockoutEngagesAndLifts(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{now: time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)}
	addr, events := startSlotServer(t, Options{
		AllowInsecureAuth: true,
		ClientNetworks:    []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Users:             []User{{Name: "crm", PasswordHash: hash}},
		MaxConnections:    20,
		AuthFailureLimit:  3,
		AuthLockout:       10 * time.Minute,
		Now:               clock.Now,
	})
	for i := range 3 {
		if err := authFrom(t, "127.0.0.2", addr, "crm", "wrong"); smtpCode(err) != 535 {
			t.Fatalf("wrong password %d: %v, want 535", i, err)
		}
		clock.advance(time.Minute)
	}
	if err := authFrom(t, "127.0.0.2", addr, "crm", "right"); smtpCode(err) != 454 {
		t.Errorf("right password from the guessing address during lockout: %v, want 454", err)
	}
	if err := authFrom(t, "127.0.0.3", addr, "crm", "right"); smtpCode(err) != 454 {
		t.Errorf("right password for the guessed user from elsewhere: %v, want 454", err)
	}
	// A client network is not locked out by an outsider's guessing.
	if err := authFrom(t, "127.0.0.1", addr, "crm", "right"); err != nil {
		t.Errorf("client network AUTH during lockout: %v", err)
	}
	if events.get(EventAuthFailed) != 3 || events.get(EventAuthLockedClient) != 1 || events.get(EventAuthLockedUser) != 1 {
		t.Errorf("events: %v", events.n)
	}
	// The window counts from the failures: 10 minutes after the first
	// one (7 minutes from now) one failure has left it, which lifts it.
	clock.advance(6 * time.Minute)
	if err := authFrom(t, "127.0.0.3", addr, "crm", "right"); smtpCode(err) != 454 {
		t.Errorf("a minute before the window ends: %v, want 454", err)
	}
	clock.advance(time.Minute)
	if err := authFrom(t, "127.0.0.2", addr, "crm", "right"); err != nil {
		t.Errorf("after the window: %v, want success", err)
	}
	// Guessing names that do not exist locks the address, not the names.
	for range 3 {
		authFrom(t, "127.0.0.4", addr, "nobody", "x")
	}
	if err := authFrom(t, "127.0.0.4", addr, "crm", "right"); smtpCode(err) != 454 {
		t.Errorf("address that guessed names: %v, want 454", err)
	}
	if err := authFrom(t, "127.0.0.5", addr, "crm", "right"); err != nil {
		t.Errorf("another address: %v, want success", err)
	}
}

func TestCommandCounter(t *testing.T) {
	record := func(typ byte, n int) []byte {
		return append([]byte{typ, 3, 3, byte(n >> 8), byte(n)}, make([]byte, n)...)
	}
	cat := func(parts ...[]byte) []byte {
		return []byte(strings.Join(func() []string {
			var s []string
			for _, p := range parts {
				s = append(s, string(p))
			}
			return s
		}(), ""))
	}
	tests := []struct {
		name     string
		startTLS bool
		inTxn    bool
		input    []byte
		want     int
	}{
		{"lines", false, false, []byte("EHLO x\r\nNOOP\r\nNOOP\r\n"), 3},
		{"partial line", false, false, []byte("EHLO x\r\nNOO"), 1},
		{"STARTTLS then records", true, false, cat([]byte("EHLO x\r\nSTARTTLS\r\n"), record(22, 300), record(23, 40), record(23, 20)), 4},
		{"STARTTLS not offered", false, false, cat([]byte("STARTTLS\r\nNOOP\r\n")), 2},
		{"STARTTLS refused, clear text goes on", true, false, []byte("starttls\r\nNOOP\r\nNOOP\r\n"), 3},
		{"STARTTLS as message content", true, true, []byte("STARTTLS\r\nNOOP\r\n"), 2},
		{"big record", true, false, cat([]byte("STARTTLS\r\n"), record(23, 20000), record(23, 5)), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Fed whole and byte by byte, the count is the same.
			c := commandCounter{startTLS: tt.startTLS}
			if got := c.feed(tt.input, tt.inTxn); got != tt.want {
				t.Errorf("whole: %d commands, want %d", got, tt.want)
			}
			c = commandCounter{startTLS: tt.startTLS}
			got := 0
			for i := range tt.input {
				got += c.feed(tt.input[i:i+1], tt.inTxn)
			}
			if got != tt.want {
				t.Errorf("byte by byte: %d commands, want %d", got, tt.want)
			}
		})
	}
}

// Over STARTTLS the commands are counted by TLS records, and the 421 that
// ends the session reaches the client through TLS.
func TestJunkCommandsCountedInsideTLS(t *testing.T) {
	cert := selfSigned(t)
	addr, events := startSlotServer(t, Options{
		TLS:             &tls.Config{Certificates: []tls.Certificate{cert}},
		MaxConnections:  4,
		MaxJunkCommands: 8,
	})
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := 0
	for ; n < 30 && err == nil; n++ {
		err = c.Noop()
	}
	if smtpCode(err) != 421 {
		t.Fatalf("NOOPs inside TLS: %v after %d, want 421", err, n)
	}
	if n > 8 {
		t.Errorf("closed after %d NOOPs inside TLS, want at most 8 commands in all", n)
	}
	if events.get(EventJunkCommands) != 1 {
		t.Errorf("events: %v", events.n)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kadenz.test"},
		DNSNames: []string{"kadenz.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// referenceFeed is commandCounter.feed's clear-text reading as it was
// written first, a byte at a time; the fast one must count the same.
func referenceFeed(c *commandCounter, p []byte, inTxn bool) int {
	units := 0
	for _, b := range p {
		if b != '\n' {
			if c.lineLen < len(c.line) {
				c.line[c.lineLen] = b
			}
			c.lineLen++
			continue
		}
		units++
		line := c.line[:min(c.lineLen, len(c.line))]
		if !inTxn && c.startTLS && isStartTLS(line) {
			c.tls = true
		}
		c.lineLen = 0
		if c.tls {
			break // records from here on: not what this reference reads
		}
	}
	return units
}

// FuzzCommandCounterLines feeds clear text in chunks of any size to the
// counter and to the byte-at-a-time reference: the same commands, the
// same switch to TLS, the same line start kept.
func FuzzCommandCounterLines(f *testing.F) {
	f.Add([]byte("EHLO x\r\nMAIL FROM:<a@b>\r\nDATA\r\nhello\r\n.\r\nQUIT\r\n"), uint8(3), true, false)
	f.Add([]byte("NOOP\r\nSTARTTLS\r\n"), uint8(1), true, false)
	f.Add([]byte("a very long line that goes past the ten bytes kept\r\nSTARTTLS\r\n"), uint8(7), true, true)
	f.Fuzz(func(t *testing.T, input []byte, chunk uint8, startTLS, inTxn bool) {
		size := int(chunk%16) + 1
		upper := make([]byte, len(input)) // ASCII upper case, same length
		for i, b := range input {
			upper[i] = b &^ (0x20 * b2u8('a' <= b && b <= 'z'))
		}
		if i := bytes.Index(upper, []byte("STARTTLS")); i >= 0 && startTLS && !inTxn {
			input = input[:i] // after a STARTTLS the reference stops: keep to clear text
		}
		fast, ref := commandCounter{startTLS: startTLS}, commandCounter{startTLS: startTLS}
		got, want := 0, 0
		for p := input; len(p) > 0; {
			n := min(size, len(p))
			got += fast.feed(p[:n], inTxn)
			want += referenceFeed(&ref, p[:n], inTxn)
			p = p[n:]
		}
		if got != want || fast.tls != ref.tls || fast.lineLen != ref.lineLen || fast.line != ref.line {
			t.Errorf("fast: %d commands, tls %v, line %q (%d); reference: %d, %v, %q (%d)",
				got, fast.tls, fast.line, fast.lineLen, want, ref.tls, ref.line, ref.lineLen)
		}
	})
}

func b2u8(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// An unknown user name is checked against a hash as costly as the most
// costly real one, so guessing names is no faster than guessing passwords.
func TestDummyCostMatchesTheUsers(t *testing.T) {
	hashAt := func(cost int) []byte {
		h, err := bcrypt.GenerateFromPassword([]byte("pw"), cost)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	cases := []struct {
		users []User
		want  int
	}{
		{nil, bcrypt.DefaultCost},
		{[]User{{Name: "a", PasswordHash: hashAt(bcrypt.MinCost)}}, bcrypt.MinCost},
		{[]User{{Name: "a", PasswordHash: hashAt(bcrypt.MinCost)}, {Name: "b", PasswordHash: hashAt(6)}}, 6},
		{[]User{{Name: "a", PasswordHash: []byte("not a hash")}}, bcrypt.DefaultCost},
	}
	for i, c := range cases {
		if got := dummyCost(c.users); got != c.want {
			t.Errorf("case %d: dummy cost %d, want %d", i, got, c.want)
		}
	}
}
