package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMailingListGovernedRight runs a list manager's mail through the real
// binary, with the headers Mailman puts on it: List-Id, List-Unsubscribe
// and Precedence on posts and administrative mail alike, one envelope
// sender for all of it.
//
//   - A subscription confirmation, told apart by a header rule, is
//     delivered at once although it is 23:00 (quiet hours), and explain
//     names the rule.
//   - Mailman 2's welcome notice (X-List-Administrivia: yes) passes without
//     a rule.
//   - A subscription confirmation and a post that Mailman 3.3.8 really
//     sent (governor/testdata/listmail/mailman3): the confirmation passes
//     at once by the built-in Mailman 3 rule, with no sender rule for its
//     list, and explain names that rule; the post is governed.
//   - Two distinct posts of the list share its List-Id; both are delivered.
//     (The superseded rule used to keep only the newer: a discussion list
//     lost posts.)
func TestMailingListGovernedRight(t *testing.T) {
	up := startRecordingUpstream(t)
	admin, token := freeAddr(t), "lists-admin-token"
	r := startRelay(t, relayOptions{
		Upstream: up.Addr,
		Args:     []string{"--admin", admin, "--clock", "virtual:2026-11-23T23:00:00Z"}, // Monday night: quiet hours
		Config: fmt.Sprintf(`hostname: relay.shop.test
admin:
  token: %s
delivery:
  tls: none
  retry_initial: 1s
governor:
  mode: enforce
  timezone: UTC
  sender_rules:
    - sender: "dev-bounces@lists.shop.test"
      header: Subject
      value: "confirm *"
      class: transactional
`, token)})
	if err := waitListening(admin, 20*time.Second, r.exited); err != nil {
		t.Fatal(err)
	}

	listHeaders := "List-Id: Developers <dev.lists.shop.test>\r\n" +
		"List-Unsubscribe: <mailto:dev-leave@lists.shop.test>\r\n" +
		"X-Mailman-Version: 3.3.8\r\n"
	send := func(to, id, from, subject, extra string) {
		t.Helper()
		c, err := dialSMTP(r.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s>\r\nDate: Mon, 23 Nov 2026 23:00:00 +0000\r\n%s\r\nText of %s.\r\n",
			from, to, subject, id, listHeaders+extra, id)
		if err := submit(c, "dev-bounces@lists.shop.test", to, []byte(msg)); err != nil {
			t.Fatalf("submitting %s: %v", id, err)
		}
		c.Quit()
	}

	send("bob@example.test", "confirm.1@lists.shop.test", "dev-confirm+1a2b3c@lists.shop.test",
		"confirm 1a2b3c", "Precedence: bulk\r\n")
	send("cid@example.test", "welcome.1@lists.shop.test", "dev-request@lists.shop.test",
		"Welcome to the \"Developers\" mailing list", "Precedence: bulk\r\nX-List-Administrivia: yes\r\n")
	// Mailman 3 puts List-Post on every post (and on no notice).
	postHeaders := "Precedence: list\r\nList-Post: <mailto:dev@lists.shop.test>\r\n"
	send("ann@example.test", "post.1@lists.shop.test", "Eve <eve@example.org>", "[dev] Release notes", postHeaders)
	send("ann@example.test", "post.2@lists.shop.test", "Dan <dan@example.org>", "[dev] Re: build failure", postHeaders)

	// Mail Mailman 3 really sent, as it handed it to its MTA: a
	// subscription confirmation and a post.
	var mm3Confirm, mm3Post string
	for _, name := range []string{"001.eml", "003.eml"} {
		data, err := os.ReadFile(filepath.Join("..", "governor", "testdata", "listmail", "mailman3", name))
		if err != nil {
			t.Fatal(err)
		}
		m, err := mail.ReadMessage(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("Mailman 3's %s: %v", name, err)
		}
		id := strings.Trim(m.Header.Get("Message-Id"), "<>")
		if name == "001.eml" {
			mm3Confirm = id
		} else {
			mm3Post = id
		}
		c, err := dialSMTP(r.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := submit(c, "dev-bounces@lists.example.org", "ann@example.com", data); err != nil {
			t.Fatalf("submitting Mailman 3's %s: %v", name, err)
		}
		c.Quit()
	}

	// Administrative mail goes at once, without the clock moving.
	for _, id := range []string{"confirm.1@lists.shop.test", "welcome.1@lists.shop.test", mm3Confirm} {
		if !waitFor(20*time.Second, func() bool { _, ok := up.message(id); return ok }) {
			t.Fatalf("%s was not delivered at once in quiet hours: %+v", id, explainEnvelopes(t, admin, token, id))
		}
	}
	var ex struct {
		Message struct {
			Class       string `json:"class"`
			ClassReason string `json:"class_reason"`
		} `json:"message"`
	}
	out := kadenzCLI(t, admin, token, "explain", "--json", "confirm.1@lists.shop.test")
	if err := json.Unmarshal(out, &ex); err != nil {
		t.Fatalf("explain --json: %v\n%s", err, out)
	}
	if ex.Message.Class != "transactional" || !strings.Contains(ex.Message.ClassReason, "sender rule 1") ||
		!strings.Contains(ex.Message.ClassReason, "Subject: confirm *") {
		t.Errorf("confirmation classified %q (%q), want transactional by sender rule 1 naming its header", ex.Message.Class, ex.Message.ClassReason)
	}
	if text := string(kadenzCLI(t, admin, token, "explain", "welcome.1@lists.shop.test")); !strings.Contains(text, "X-List-Administrivia") {
		t.Errorf("explain of the welcome notice does not say why it passed:\n%s", text)
	}
	out = kadenzCLI(t, admin, token, "explain", "--json", mm3Confirm)
	if err := json.Unmarshal(out, &ex); err != nil {
		t.Fatalf("explain --json: %v\n%s", err, out)
	}
	if ex.Message.Class != "transactional" || !strings.Contains(ex.Message.ClassReason, "list administrative mail (Mailman 3:") {
		t.Errorf("Mailman 3's confirmation classified %q (%q), want transactional by the built-in Mailman 3 rule", ex.Message.Class, ex.Message.ClassReason)
	}
	if text := string(kadenzCLI(t, admin, token, "explain", mm3Confirm)); !strings.Contains(text, "Mailman 3") {
		t.Errorf("explain of Mailman 3's confirmation does not name the rule:\n%s", text)
	}

	// The posts are governed: held through the night, then decided. Both
	// reach the reader, the second is not read as a newer version of the
	// first. Two days of virtual time leave room for any spacing the model
	// chooses.
	posts := []string{"post.1@lists.shop.test", "post.2@lists.shop.test", mm3Post}
	for _, id := range posts {
		if _, ok := up.message(id); ok {
			t.Fatalf("list post %s was delivered in quiet hours without the clock moving", id)
		}
	}
	for hour := 0; hour < 48; hour++ {
		advanceClock(t, admin, token, "1h")
		all := true
		for _, id := range posts {
			_, ok := up.message(id)
			all = all && ok
		}
		if all {
			break
		}
		waitCaughtUp(t, admin, token)
	}
	for _, id := range posts {
		if !waitFor(20*time.Second, func() bool { _, ok := up.message(id); return ok }) {
			t.Errorf("%s was never delivered: %+v", id, explainEnvelopes(t, admin, token, id))
		}
	}
}

// waitCaughtUp polls GET /v1/clock until the relay says it has done
// everything due by its virtual time.
func waitCaughtUp(t *testing.T, admin, token string) {
	t.Helper()
	ok := waitFor(20*time.Second, func() bool {
		var clock struct {
			CaughtUp bool `json:"caught_up"`
		}
		body := adminGet(t, admin, token, "/v1/clock")
		return json.Unmarshal(body, &clock) == nil && clock.CaughtUp
	})
	if !ok {
		t.Fatal("the relay never caught up with its virtual clock")
	}
}

// adminGet reads one admin API path with the token.
func adminGet(t *testing.T, admin, token, path string) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+admin+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", path, resp.Status, body)
	}
	return body
}
