package delivery

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"kadenz/config"
	"kadenz/store"
)

// sink is a go-smtp server that keeps every message it accepts.
type sink struct {
	mu   sync.Mutex
	got  [][]byte
	addr string
}

type sinkSession struct{ s *sink }

func (sinkSession) Reset()                               {}
func (sinkSession) Logout() error                        { return nil }
func (sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.s.mu.Lock()
	s.s.got = append(s.s.got, b)
	s.s.mu.Unlock()
	return nil
}

func startSink(t *testing.T) *sink {
	t.Helper()
	k := &sink{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return sinkSession{k}, nil }))
	srv.Domain = "sink.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxMessageBytes = 64 << 20
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return k
}

func (k *sink) messages() [][]byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([][]byte(nil), k.got...)
}

func sinkSender(t *testing.T, addr string) Sender {
	t.Helper()
	h, err := NewSmarthost(SmarthostOptions{Addr: addr, TLSMode: config.TLSNone, Hostname: "relay.kadenz.test",
		ConnectTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := h.NewSender()
	t.Cleanup(func() { s.Close() })
	return s
}

// brokenReader gives n bytes of r, then fails.
type brokenReader struct {
	r io.Reader
	n int
}

func (b *brokenReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, errors.New("part 3 of 5 is damaged")
	}
	p = p[:min(len(p), b.n)]
	n, err := b.r.Read(p)
	b.n -= n
	return n, err
}

// A streamed parcel reaches the upstream byte for byte, Prepare's prefix
// first; one whose stream fails half-way reaches it not at all (no
// truncated message ends DATA), and the failure is permanent, ours.
func TestStreamedParcel(t *testing.T) {
	k := startSink(t)
	s := sinkSender(t, k.addr)
	body := bytes.Repeat([]byte("0123456789 abcdefghijklmnopqrstuvwxyz\r\n"), 100_000) // about 4 MB
	body = append([]byte("Subject: big\r\n\r\n"), body...)
	envs := []store.Envelope{{ID: "m-1", To: "ann@example.test"}}
	p := Parcel{From: "crm@sender.test", Envelopes: envs, Prefix: []byte("X-Kadenz-Envelope: m-1\r\n"),
		Stream: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }}
	if errs := s.Send(context.Background(), p); errs[0] != nil {
		t.Fatalf("streamed send: %v", errs[0])
	}
	got := k.messages()
	if len(got) != 1 || !bytes.Equal(got[0], append([]byte("X-Kadenz-Envelope: m-1\r\n"), body...)) {
		t.Fatalf("the upstream got %d messages, the first not the prefix and body sent", len(got))
	}

	p.Stream = func() (io.ReadCloser, error) {
		return io.NopCloser(&brokenReader{r: bytes.NewReader(body), n: 1 << 20}), nil
	}
	errs := s.Send(context.Background(), p)
	if errs[0] == nil || !IsPermanent(errs[0]) || !strings.Contains(errs[0].Error(), "damaged") {
		t.Errorf("send with a failing stream: %v, want a permanent read error", errs[0])
	}
	// The connection was dropped mid-DATA: the upstream keeps nothing of it,
	// and the next parcel goes through on a new connection.
	p.Stream = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	if errs := s.Send(context.Background(), p); errs[0] != nil {
		t.Fatalf("send after the failure: %v", errs[0])
	}
	if got := k.messages(); len(got) != 2 || !bytes.Equal(got[1], got[0]) {
		t.Errorf("the upstream holds %d messages, want the two whole ones only", len(got))
	}
}

// The outbox writes a streamed parcel whole.
func TestOutboxStreamedParcel(t *testing.T) {
	o, err := NewOutbox(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("outbox line\r\n"), 200_000)
	p := Parcel{From: "a@sender.test", Envelopes: []store.Envelope{{ID: "m-1", To: "b@example.test"}},
		Stream: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }}
	if errs := o.Send(context.Background(), p); errs[0] != nil {
		t.Fatal(errs[0])
	}
	p.Envelopes[0].ID = "m-2"
	p.Stream = func() (io.ReadCloser, error) {
		return io.NopCloser(&brokenReader{r: bytes.NewReader(body), n: 1000}), nil
	}
	if errs := o.Send(context.Background(), p); errs[0] == nil {
		t.Error("a failing stream was written to the outbox")
	}
	entries, _ := readDirNames(o.dir)
	if len(entries) != 1 || entries[0] != "m-1.eml" {
		t.Errorf("outbox holds %v, want m-1.eml only", entries)
	}
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// hide8BitMIME forwards connections to addr, hiding the 8BITMIME keyword
// in the server's EHLO reply (same length, so nothing else moves): an
// upstream that does not offer it, in front of a real go-smtp server.
func hide8BitMIME(t *testing.T, addr string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				return
			}
			go func() { io.Copy(u, c); u.Close() }()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := u.Read(buf)
					if n > 0 {
						c.Write(bytes.ReplaceAll(buf[:n], []byte("8BITMIME"), []byte("X-HIDDEN")))
					}
					if err != nil {
						c.Close()
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// To an upstream without 8BITMIME a streamed 8-bit message is converted
// exactly as the same message held in memory is.
func TestStreamedParcelDowngraded(t *testing.T) {
	k := startSink(t)
	s := sinkSender(t, hide8BitMIME(t, k.addr))
	var b bytes.Buffer
	b.WriteString("Subject: big\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	for b.Len() < 3<<20 {
		b.WriteString("caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9e, line after line\r\n")
	}
	body := b.Bytes()
	envs := []store.Envelope{{ID: "m-1", To: "ann@example.test"}}
	if errs := s.Send(context.Background(), Parcel{From: "a@sender.test", Envelopes: envs, Body: body}); errs[0] != nil {
		t.Fatalf("send from memory: %v", errs[0])
	}
	streamed := Parcel{From: "a@sender.test", Envelopes: envs,
		Stream: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }}
	if errs := s.Send(context.Background(), streamed); errs[0] != nil {
		t.Fatalf("send streamed: %v", errs[0])
	}
	got := k.messages()
	if len(got) != 2 || bytes.Equal(got[0], body) {
		t.Fatalf("the upstream got %d messages; the first unconverted: %v", len(got), len(got) > 0 && bytes.Equal(got[0], body))
	}
	if !bytes.Equal(got[1], got[0]) {
		t.Errorf("streamed conversion (%d bytes) differs from the in-memory one (%d bytes)", len(got[1]), len(got[0]))
	}
	if !strings.Contains(string(got[1][:2000]), "quoted-printable") {
		t.Errorf("converted message does not say quoted-printable:\n%s", got[1][:300])
	}
}

// A report on a large message (Body only its header, BodySize the whole)
// returns the header even under RET=FULL and no size cap: never a cut
// message presented as the whole one.
func TestReportOnLargeMessageReturnsHeader(t *testing.T) {
	header := []byte("Subject: big\r\nFrom: <a@sender.test>\r\n")
	n := Notice{Action: ActionFailed, Message: store.Message{ID: "m", From: "a@sender.test", Ret: "FULL"},
		Envelopes: []store.Envelope{{ID: "m-1", To: "ann@example.test"}}, Errors: []error{Permanent(errors.New("refused"))},
		Body: header, BodySize: 30 << 20, At: time.Unix(0, 0)}
	report := string(ComposeReport(n, ReportOptions{Hostname: "kadenz.test", MessageID: "r1"}))
	if !strings.Contains(report, "text/rfc822-headers") || strings.Contains(report, "message/rfc822") {
		t.Errorf("report on a large message does not return just its header:\n%s", report)
	}
	n.BodySize = int64(len(header))
	if report := string(ComposeReport(n, ReportOptions{Hostname: "kadenz.test", MessageID: "r2"})); !strings.Contains(report, "message/rfc822") {
		t.Errorf("a whole small message is not returned whole under RET=FULL:\n%s", report)
	}
}
