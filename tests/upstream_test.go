package tests

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/textproto"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// upstream is an in-process go-smtp server standing in for the smarthost. It
// records every message it accepts, keyed by the value of one header (the
// test's unique sequence number), so a test can tell lost messages from
// duplicates.
type upstream struct {
	Addr string
	key  string // header that identifies a message, e.g. X-Test-Seq

	mu    sync.Mutex
	seen  map[string]int    // key -> times received
	first map[string][]byte // key -> bytes of the first copy
	total int
	nokey int // messages without the key header
}

// startUpstream listens on addr ("127.0.0.1:0" for any port) and serves until
// the test ends.
func startUpstream(t *testing.T, addr, key string) *upstream {
	t.Helper()
	u := &upstream{key: key, seen: map[string]int{}, first: map[string][]byte{}}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("upstream listen %s: %v", addr, err)
	}
	u.Addr = l.Addr().String()
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &upstreamSession{u: u}, nil
	}))
	s.Domain = "upstream.test"
	s.ReadTimeout = 30 * time.Second
	s.WriteTimeout = 30 * time.Second
	s.MaxMessageBytes = 50 << 20
	s.MaxRecipients = 1000
	s.AllowInsecureAuth = true
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return u
}

func (u *upstream) record(msg []byte) {
	hdr, _ := textproto.NewReader(bufio.NewReader(bytes.NewReader(msg))).ReadMIMEHeader()
	k := hdr.Get(u.key)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.total++
	if k == "" {
		u.nokey++
		return
	}
	if u.seen[k] == 0 {
		u.first[k] = msg
	}
	u.seen[k]++
}

// has reports whether a message with this key arrived.
func (u *upstream) has(k string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen[k] > 0
}

// message returns the first copy received for key.
func (u *upstream) message(k string) []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.first[k]
}

// counts returns how many messages arrived, how many distinct keys, and how
// many copies beyond the first.
func (u *upstream) counts() (total, distinct, duplicates int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, n := range u.seen {
		distinct++
		duplicates += n - 1
	}
	return u.total, distinct, duplicates
}

type upstreamSession struct{ u *upstream }

func (s *upstreamSession) Reset()        {}
func (s *upstreamSession) Logout() error { return nil }
func (s *upstreamSession) Mail(string, *smtp.MailOptions) error {
	return nil
}
func (s *upstreamSession) Rcpt(string, *smtp.RcptOptions) error {
	return nil
}

func (s *upstreamSession) Data(r io.Reader) error {
	msg, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.u.record(msg)
	return nil
}
