package intake

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Fair slots. Connections are a shared resource, and a relay for a CRM must
// not let strangers hold them: a handful of idle connections sending NOOP
// once locked the CRM out with 421. So:
//
//   - admission (gate): a cap on all connections, a smaller cap on those
//     from outside the client networks (the rest is reserved for them), and
//     a cap per outside address (Postfix's smtpd_client_connection_count_limit;
//     like Postfix, which exempts mynetworks, client networks have none);
//   - once in (slotConn): a session outside a mail transaction may send at
//     most MaxJunkCommands commands (Postfix's smtpd_junk_command_limit) and
//     stay at most IdleTimeout, counted afresh after each accepted message.
//
// go-smtp answers NOOP, VRFY and HELP itself, without asking the backend,
// so commands are counted where they are read, on the connection: lines in
// clear text, and after STARTTLS (or on the implicit-TLS port) the client's
// TLS application-data records, one per command for ordinary clients, one
// per group for pipelining ones. The session tells the connection when a
// transaction starts and ends. A session over a limit gets go-smtp's own
// "421 4.4.2" (a read error that says timeout), the one reply that reaches
// the client whether or not the session is encrypted.

// Counted events (the Count option), a closed set for metrics.
const (
	EventRefusedTotal     = "refused_total"      // all slots taken
	EventRefusedOutsiders = "refused_outsiders"  // the slots outsiders may take are taken
	EventRefusedPerClient = "refused_per_client" // this address holds its share
	EventJunkCommands     = "junk_commands"      // closed: too many commands outside a transaction
	EventIdle             = "idle"               // closed: outside a transaction too long
	EventAuthFailed       = "auth_failed"        // a failed AUTH
	EventAuthLockedClient = "auth_locked_client" // AUTH refused: this address failed too often
	EventAuthLockedUser   = "auth_locked_user"   // AUTH refused: this user name failed too often
)

// gate admits connections.
type gate struct {
	mu                      sync.Mutex
	total, outsiders        int
	perAddr                 map[netip.Addr]int
	max, outsiderMax, perIP int
}

func newGate(max, reserved, perClient int) *gate {
	return &gate{perAddr: map[netip.Addr]int{}, max: max, outsiderMax: max - reserved, perIP: perClient}
}

// admit takes a slot for a client, or says which limit refuses it.
func (g *gate) admit(addr netip.Addr, trusted bool) (event string, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total >= g.max {
		return EventRefusedTotal, false
	}
	if !trusted {
		if g.outsiders >= g.outsiderMax {
			return EventRefusedOutsiders, false
		}
		if g.perAddr[addr] >= g.perIP {
			return EventRefusedPerClient, false
		}
		g.outsiders++
		g.perAddr[addr]++
	}
	g.total++
	return "", true
}

func (g *gate) release(addr netip.Addr, trusted bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if !trusted {
		g.outsiders--
		if g.perAddr[addr]--; g.perAddr[addr] <= 0 {
			delete(g.perAddr, addr)
		}
	}
}

// slotListener admits connections through the gate. A refused client gets
// 421 at once (RFC 5321 3.8) rather than waiting in the kernel's backlog,
// so it knows to try again later; the reply is written off the accept
// loop, so a client that does not read cannot slow the door for others.
type slotListener struct {
	net.Listener
	srv         *Server
	implicitTLS bool
}

func (l *slotListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := remoteAddr(c)
		trusted := l.srv.trusted(addr)
		event, ok := l.srv.gate.admit(addr, trusted)
		if ok {
			sc := l.srv.newSlotConn(c, addr, trusted)
			sc.counter.tls = l.implicitTLS
			return sc, nil
		}
		l.srv.count(event)
		l.srv.log.Warn("connection refused", "client", addr, "reason", event)
		go func() {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			fmt.Fprintf(c, "421 4.7.0 %s Too many connections, try again later\r\n", l.srv.opts.Hostname)
			c.Close()
		}()
	}
}

func remoteAddr(c net.Conn) netip.Addr {
	// A TCP peer's address is at hand without formatting and parsing it
	// (one connection per message is common: smtp-source, many CRMs).
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// slotConn is one admitted connection: it gives its slot back on Close and
// enforces the limits on a session outside a mail transaction.
type slotConn struct {
	net.Conn // *replyConn
	srv      *Server
	addr     netip.Addr
	trusted  bool
	release  sync.Once

	mu        sync.Mutex
	inTxn     bool      // between an accepted MAIL and the end of the transaction
	junk      int       // commands outside a transaction since the last accepted message
	idleSince time.Time // connected, or last in a transaction (real time)
	counter   commandCounter
}

func (s *Server) newSlotConn(c net.Conn, addr netip.Addr, trusted bool) *slotConn {
	return &slotConn{Conn: newReplyConn(c), srv: s, addr: addr, trusted: trusted,
		idleSince: time.Now(), counter: commandCounter{startTLS: s.opts.TLS != nil}}
}

func (c *slotConn) Close() error {
	c.release.Do(func() { c.srv.gate.release(c.addr, c.trusted) })
	return c.Conn.Close()
}

// errSessionLimit ends a session over a limit. It says timeout so that
// go-smtp answers 421 4.4.2 before closing, through TLS if need be.
type errSessionLimit struct{ reason string }

func (e errSessionLimit) Error() string   { return "session limit: " + e.reason }
func (e errSessionLimit) Timeout() bool   { return true }
func (e errSessionLimit) Temporary() bool { return true }

func (c *slotConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	idleFor := time.Since(c.idleSince)
	overIdle := c.idleLimited() && idleFor >= c.srv.opts.IdleTimeout
	c.mu.Unlock()
	if overIdle {
		return 0, c.limit(EventIdle, "idle_for", idleFor.Round(time.Second))
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		units := c.counter.feed(p[:n], c.inTxn)
		over := false
		if !c.inTxn {
			c.junk += units
			over = c.junk > c.srv.opts.MaxJunkCommands
		}
		junk := c.junk
		c.mu.Unlock()
		if over {
			return 0, c.limit(EventJunkCommands, "commands", junk)
		}
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.mu.Lock()
		idle := c.idleLimited() && time.Since(c.idleSince) >= c.srv.opts.IdleTimeout
		c.mu.Unlock()
		if idle {
			return n, c.limit(EventIdle, "idle_for", c.srv.opts.IdleTimeout)
		}
	}
	return n, err
}

// idleLimited says whether the idle limit applies now; c.mu must be held.
func (c *slotConn) idleLimited() bool { return !c.inTxn && c.srv.opts.IdleTimeout > 0 }

func (c *slotConn) limit(event string, k string, v any) error {
	c.srv.count(event)
	c.srv.log.Warn("closing session outside a mail transaction", "client", c.addr, "reason", event, k, v)
	return errSessionLimit{event}
}

// SetReadDeadline keeps a session outside a transaction from waiting past
// its idle limit: go-smtp sets ReadTimeout before each command, which a
// client sending NOOP now and then would never reach.
func (c *slotConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	if c.idleLimited() {
		if limit := c.idleSince.Add(c.srv.opts.IdleTimeout); t.IsZero() || limit.Before(t) {
			t = limit
		}
	}
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline goes through SetReadDeadline for the same reason.
func (c *slotConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// transaction records that a mail transaction started (MAIL accepted) or
// ended; accepted says it ended with a message accepted, which starts the
// counts afresh.
func (c *slotConn) transaction(open, accepted bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inTxn = open
	if open {
		c.idleSince = time.Now() // idle is time since the last transaction
	}
	if accepted {
		c.junk, c.idleSince = 0, time.Now()
	}
}

// commandCounter counts the commands a client sends, from the bytes read.
type commandCounter struct {
	startTLS bool // the server offers STARTTLS
	tls      bool // counting TLS records, not lines
	// Clear text: the start of the current line, enough to see STARTTLS.
	line    [10]byte
	lineLen int
	// TLS: the record header being read, and what is left of the record.
	hdr       [5]byte
	hdrLen    int
	remaining int
}

// feed reads p and returns how many commands ended in it. In a
// transaction (message content) it still follows TLS records and lines,
// but a line saying STARTTLS there is content, not a command.
func (c *commandCounter) feed(p []byte, inTxn bool) int {
	units := 0
	for len(p) > 0 {
		if c.tls {
			if c.remaining > 0 {
				k := min(c.remaining, len(p))
				c.remaining -= k
				p = p[k:]
				continue
			}
			k := copy(c.hdr[c.hdrLen:], p)
			c.hdrLen += k
			p = p[k:]
			if c.hdrLen < len(c.hdr) {
				continue
			}
			c.hdrLen = 0
			if t := c.hdr[0]; t < 20 || t > 23 {
				// Not TLS after all (a STARTTLS the server refused):
				// back to lines; this header's bytes are lost to the count.
				c.tls = false
				continue
			}
			c.remaining = int(c.hdr[3])<<8 | int(c.hdr[4])
			if c.hdr[0] == 23 { // application data
				units++
			}
			continue
		}
		// Every byte of every message passes here, so the line's end is
		// found with IndexByte rather than a byte at a time; only a line's
		// first bytes are kept, to recognise STARTTLS.
		nl := bytes.IndexByte(p, '\n')
		text := p
		if nl >= 0 {
			text = p[:nl]
		}
		if c.lineLen < len(c.line) {
			copy(c.line[c.lineLen:], text)
		}
		c.lineLen += len(text)
		if nl < 0 {
			return units
		}
		p = p[nl+1:]
		units++
		line := c.line[:min(c.lineLen, len(c.line))]
		if !inTxn && c.startTLS && isStartTLS(line) {
			c.tls = true
		}
		c.lineLen = 0
	}
	return units
}

func isStartTLS(line []byte) bool {
	const want = "STARTTLS"
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if len(line) != len(want) {
		return false
	}
	for i := range line {
		if b := line[i] &^ 0x20; b != want[i] {
			return false
		}
	}
	return true
}

// authThrottle counts failed logins per client address and per user
// name, and refuses AUTH for a key with limit failures within window.
// Only configured user names are counted per user, so guessing names
// cannot grow the table; addresses are forgotten once their failures
// leave the window.
type authThrottle struct {
	mu       sync.Mutex
	limit    int
	window   time.Duration
	now      func() time.Time
	failures map[string][]time.Time // "addr:" or "user:" + key -> failure times, oldest first
}

// maxTrackedAddrs bounds the table: beyond it, expired entries are swept.
const maxTrackedAddrs = 100_000

func newAuthThrottle(limit int, window time.Duration, now func() time.Time) *authThrottle {
	return &authThrottle{limit: limit, window: window, now: now, failures: map[string][]time.Time{}}
}

// recent returns key's failures still in the window; t.mu must be held.
func (t *authThrottle) recent(key string, now time.Time) []time.Time {
	f := t.failures[key]
	i := 0
	for i < len(f) && !f[i].After(now.Add(-t.window)) {
		i++
	}
	if i == len(f) {
		delete(t.failures, key)
		return nil
	}
	if i > 0 {
		f = f[i:]
		t.failures[key] = f
	}
	return f
}

// locked says which count refuses AUTH now ("" if none) and until when.
func (t *authThrottle) locked(addr netip.Addr, user string, knownUser, checkUser bool) (event string, until time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if f := t.recent("addr:"+addr.String(), now); len(f) >= t.limit {
		return EventAuthLockedClient, f[len(f)-t.limit].Add(t.window)
	}
	if knownUser && checkUser {
		if f := t.recent("user:"+user, now); len(f) >= t.limit {
			return EventAuthLockedUser, f[len(f)-t.limit].Add(t.window)
		}
	}
	return "", time.Time{}
}

// fail records a failed login.
func (t *authThrottle) fail(addr netip.Addr, user string, knownUser bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if len(t.failures) >= maxTrackedAddrs {
		for k := range t.failures {
			t.recent(k, now)
		}
	}
	keys := []string{"addr:" + addr.String()}
	if knownUser {
		keys = append(keys, "user:"+user)
	}
	for _, k := range keys {
		f := append(t.recent(k, now), now)
		if len(f) > t.limit { // older ones no longer decide anything
			f = f[len(f)-t.limit:]
		}
		t.failures[k] = f
	}
}

// count reports an event to the Count option.
func (s *Server) count(event string) {
	if s.opts.Count != nil {
		s.opts.Count(event)
	}
}
