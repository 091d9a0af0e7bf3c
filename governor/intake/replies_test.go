package intake

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// countingConn counts the writes that reach the network.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

type countingListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, writes: &l.writes}, nil
}

// A whole SMTP session costs one write per reply, however many lines a
// reply has: EHLO's list of extensions leaves in one segment.
func TestRepliesLeaveInOneWriteEach(t *testing.T) {
	var mu sync.Mutex
	var got []*Submission
	srv, err := New(Options{
		Hostname:       "kadenz.test",
		ClientNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		MaxConnections: 4,
		MaxRecipients:  10,
		ReadTimeout:    10 * time.Second,
		WriteTimeout:   10 * time.Second,
		Accept: func(_ context.Context, s *Submission) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			c := *s
			c.Data = append([]byte(nil), s.Data...) // s.Data is reused after Accept
			got = append(got, &c)
			return "id1", nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &countingListener{Listener: raw}
	go srv.Serve(l, false)
	t.Cleanup(func() { srv.Close() })

	conn, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClient(conn)
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	// The extension list has several lines; all of them arrived.
	for _, ext := range []string{"PIPELINING", "8BITMIME", "SIZE", "LIMITS"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("EHLO reply lacks %s", ext)
		}
	}
	body := "Subject: hi\r\n\r\nhello\r\n"
	if err := c.SendMail("a@x.test", []string{"b@y.test"}, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("QUIT: %v (the 221 must be sent before the connection closes)", err)
	}
	// greeting, EHLO, MAIL, RCPT, DATA (354), end of data (250), QUIT (221)
	deadline := time.Now().Add(5 * time.Second)
	for l.writes.Load() < 7 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := l.writes.Load(); n != 7 {
		t.Errorf("the server made %d writes for 7 replies", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || string(got[0].Data) != body {
		t.Fatalf("accepted %d messages, want the one sent", len(got))
	}
}

// Nothing written waits past the next read, and Close sends what is left.
func TestReplyConnFlushesBeforeReadAndOnClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int64
	rc := newReplyConn(countingConn{Conn: server, writes: &writes})

	rc.Write([]byte("250-one\r\n"))
	rc.Write([]byte("250 two\r\n"))
	if n := writes.Load(); n != 0 {
		t.Fatalf("%d writes reached the network before the server read", n)
	}
	client.Write([]byte("NOOP\r\n"))
	buf := make([]byte, 64)
	n, err := rc.Read(buf)
	if err != nil || string(buf[:n]) != "NOOP\r\n" {
		t.Fatalf("server read %q, %v", buf[:n], err)
	}
	if n := writes.Load(); n != 1 {
		t.Fatalf("%d writes for two buffered lines, want 1", n)
	}
	r := bufio.NewReader(client)
	for _, want := range []string{"250-one\r\n", "250 two\r\n"} {
		line, err := r.ReadString('\n')
		if err != nil || line != want {
			t.Fatalf("client read %q, %v; want %q", line, err, want)
		}
	}

	rc.Write([]byte("221 bye\r\n"))
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	line, err := r.ReadString('\n')
	if err != nil || line != "221 bye\r\n" {
		t.Fatalf("after Close the client read %q, %v; want the 221", line, err)
	}
	if _, err := r.ReadByte(); err == nil {
		t.Fatal("connection still open after Close")
	}
}
