package governor

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"

	"kadenz/store"
)

// Transactional mail goes to delivery from memory (the queue's hand-off),
// in buffers that intake then reuses for later messages. Each message the
// upstream gets must be exactly what the store holds for it: the bytes a
// read from the store would have sent. Several sessions at once, with
// bodies of different sizes, so a buffer given back too early would show
// as another message's bytes.
func TestHandedOffMailIsWhatTheStoreHolds(t *testing.T) {
	for _, bound := range []int{0, 2000} {
		t.Run(fmt.Sprint(bound), func(t *testing.T) { testHandedOffMail(t, bound) })
	}
}

// testHandedOffMail runs the test above with the hand-off bounded to
// bound bytes (0: its default). At 2,000, about one message fits: each
// offer pushes out the one before, often while that one's session is
// still storing it, so the body's buffer has two holders letting go in
// either order. The message the upstream gets must then still be the one
// submitted, not another's bytes in a buffer reused too early.
func testHandedOffMail(t *testing.T, bound int) {
	up := startUpstream(t, nil)
	r := startRelayWith(t, Options{Config: testConfig(t, up.addr), HandoffBytes: bound})
	const sessions, each = 4, 15
	var wg sync.WaitGroup
	for s := range sessions {
		c := dial(t, r)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				body := submitted(s, i)
				if err := submit(t, c, "crm@shop.test", []string{fmt.Sprintf("p%d@example.test", i%3)}, body); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, "every delivery", func() bool { return len(up.messages()) == sessions*each })
	id := regexp.MustCompile(` id ([0-9a-z]+);`)
	subject := regexp.MustCompile(`Subject: receipt (\d+)/(\d+)\r\n`)
	seen := map[string]bool{}
	for _, m := range up.messages() {
		match := id.FindSubmatch(m.data)
		if match == nil {
			t.Fatalf("no queue ID in %q", m.data)
		}
		stored, err := r.DB().Body(string(match[1]))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.data, stored) {
			t.Errorf("message %s delivered as\n%q\nstored as\n%q", match[1], m.data, stored)
		}
		seen[string(match[1])] = true
		var si, ii int
		if sm := subject.FindSubmatch(m.data); sm == nil {
			t.Errorf("message %s: no subject of ours in %q", match[1], m.data)
		} else if fmt.Sscan(string(sm[1])+" "+string(sm[2]), &si, &ii); !bytes.HasSuffix(m.data, []byte(submitted(si, ii))) {
			t.Errorf("message %s is not receipt %d/%d as submitted:\n%q", match[1], si, ii, m.data)
		}
	}
	if len(seen) != sessions*each {
		t.Errorf("%d distinct messages delivered, want %d", len(seen), sessions*each)
	}
	waitFor(t, "delivered state", func() bool { return envelopeStates(t, r.DB())[store.StateDelivered] == sessions*each })
}

// submitted is the message session s submits as its i-th.
func submitted(s, i int) string {
	return fmt.Sprintf("From: crm@shop.test\r\nSubject: receipt %d/%d\r\n\r\n%s", s, i,
		strings.Repeat(fmt.Sprintf("line %d of session %d\r\n", i, s), 1+(i*37+s*11)%90))
}
