package tests

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"kadenz/store/postgres/pgtest"
)

// sharedMailbox is an in-process IMAP server with one feedback mailbox
// that every node of a test cluster is configured to read. Each node logs
// in with its own name as password, so the server knows which node each
// session belongs to, and records whether sessions of two nodes were ever
// open at once.
type sharedMailbox struct {
	Addr string
	user *imapmemserver.User

	mu      sync.Mutex
	open    map[string]int // node -> sessions open now
	logins  []string       // node of each login, in order
	overlap []string       // "a+b" when a login found another node's session open
}

const mailboxUser = "feedback"

func startSharedMailbox(t *testing.T) *sharedMailbox {
	t.Helper()
	m := &sharedMailbox{user: imapmemserver.NewUser(mailboxUser, "unused"), open: map[string]int{}}
	m.user.Create("INBOX", nil)
	m.user.Create("Done", nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.Addr = l.Addr().String()
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &nodeSession{box: m}, nil, nil
		},
		InsecureAuth: true,
		Logger:       log.New(io.Discard, "", 0), // the killed node's connection is cut on purpose
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapMove: {}},
	})
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return m
}

// nodeSession is one IMAP session, tagged with the node that logged in.
type nodeSession struct {
	*imapmemserver.UserSession
	box  *sharedMailbox
	node string
}

func (s *nodeSession) Login(username, password string) error {
	if username != mailboxUser || password == "" {
		return imapserver.ErrAuthFailed
	}
	m := s.box
	m.mu.Lock()
	defer m.mu.Unlock()
	for other, n := range m.open {
		if n > 0 && other != password {
			m.overlap = append(m.overlap, other+"+"+password)
		}
	}
	s.node = password
	m.open[s.node]++
	m.logins = append(m.logins, s.node)
	s.UserSession = imapmemserver.NewUserSession(m.user)
	return nil
}

func (s *nodeSession) Close() error {
	if s.UserSession == nil {
		return nil
	}
	s.box.mu.Lock()
	s.box.open[s.node]--
	s.box.mu.Unlock()
	return s.UserSession.Close()
}

// deliver appends a feedback message (an out-of-office reply) to INBOX.
func (m *sharedMailbox) deliver(t *testing.T, n int) {
	t.Helper()
	raw := fmt.Sprintf("From: ann@example.test\r\nTo: bounces@shop.test\r\nSubject: Out of office %d\r\n"+
		"Auto-Submitted: auto-replied\r\nMessage-Id: <ooo-%d@example.test>\r\n\r\nI am away.\r\n", n, n)
	if _, err := m.user.Append("INBOX", bytes.NewReader([]byte(raw)), &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
}

// done is how many messages a reader has moved to Done.
func (m *sharedMailbox) done(t *testing.T) uint32 {
	t.Helper()
	st, err := m.user.Status("Done", &imap.StatusOptions{NumMessages: true})
	if err != nil {
		t.Fatal(err)
	}
	return *st.NumMessages
}

// readers returns the nodes that logged in, in order of first login, and
// the overlaps seen.
func (m *sharedMailbox) readers() (nodes, overlap []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.logins {
		if len(nodes) == 0 || nodes[len(nodes)-1] != n {
			nodes = append(nodes, n)
		}
	}
	return nodes, append([]string(nil), m.overlap...)
}

// TestClusterMailboxReadByOneNode: three nodes are configured with the
// same feedback mailbox; one reads it at a time (the mailbox's lease), and
// when that node is killed another takes over and reads the mail that
// arrives after.
func TestClusterMailboxReadByOneNode(t *testing.T) {
	url := pgtest.URL(t)
	up := startUpstream(t, "127.0.0.1:0", "X-Test-Seq")
	box := startSharedMailbox(t)
	mailbox := func(node string) string {
		return fmt.Sprintf(`feedback:
  mailboxes:
    - name: feedback
      address: %s
      tls: none
      username: %s
      password: %s
      processed: flag
      move_to: Done
      schedule: "@every 1s"
      idle: true
`, box.Addr, mailboxUser, node)
	}
	var nodes []*clusterNode
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		nodes = append(nodes, startClusterNodeWith(t, name, url, up.Addr, "2s", "", mailbox(name)))
	}
	box.deliver(t, 1)
	if !waitFor(30*time.Second, func() bool { return box.done(t) == 1 }) {
		t.Fatal("the first feedback message was never read")
	}
	// Several renewal periods (a third of the 2 s lease each) in which the
	// other nodes asked for the lease and were refused.
	box.deliver(t, 2)
	if !waitFor(30*time.Second, func() bool { return box.done(t) == 2 }) {
		t.Fatal("the second feedback message was never read")
	}
	readers, overlap := box.readers()
	if len(readers) != 1 || len(overlap) > 0 {
		t.Fatalf("mailbox read by %v (sessions of two nodes at once: %v); want one node", readers, overlap)
	}
	var victim *clusterNode
	for _, n := range nodes {
		if n.Name == readers[0] {
			victim = n
		}
	}
	victim.kill()
	box.deliver(t, 3)
	killed := time.Now()
	if !waitFor(30*time.Second, func() bool { return box.done(t) == 3 }) {
		t.Fatalf("after %s was killed, no node read the mailbox (readers so far %v)", victim.Name, readers)
	}
	takeover := time.Since(killed)
	readers, overlap = box.readers()
	if len(readers) != 2 || readers[0] == readers[1] || len(overlap) > 0 {
		t.Fatalf("mailbox read by %v (sessions of two nodes at once: %v); want the killed node, then one other", readers, overlap)
	}
	t.Logf("mailbox read by %s, then by %s %v after the kill", readers[0], readers[1], takeover.Round(time.Millisecond))
}
