package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kadenz/store/postgres/pgtest"
)

// Several kadenz serve processes on one PostgreSQL schema (docs/scale.md):
// each node has its own SMTP port, admin port and data directory, all
// relay to one in-process smarthost. PostgreSQL is the private cluster of
// store/postgres/pgtest: without it these tests skip, under CI=true they
// fail.

const clusterToken = "cluster-admin-token"

// tookDecider is what a node logs when it takes the decider lease.
var tookDecider = []byte(`does that work" part=leases lease=decider`)

// clusterNode is one node of a test cluster.
type clusterNode struct {
	*relay
	Name  string
	Admin string
}

// startClusterNode starts kadenz serve as node name on the database at
// url, with governor (YAML lines under governor:, indented two spaces)
// and more serve flags.
func startClusterNode(t *testing.T, name, url, upstream, lease, governor string, args ...string) *clusterNode {
	return startClusterNodeWith(t, name, url, upstream, lease, governor, "", args...)
}

// startClusterNodeWith is startClusterNode with more top-level YAML.
func startClusterNodeWith(t *testing.T, name, url, upstream, lease, governor, more string, args ...string) *clusterNode {
	t.Helper()
	admin := freeAddr(t)
	cfg := fmt.Sprintf(`
store:
  backend: postgres
  postgres:
    url: %s
    node: %s
    lease: %s
delivery:
  tls: none
  retry_initial: 200ms
  retry_max: 1s
  connect_timeout: 1s
  command_timeout: 1s
  concurrency: 8
intake:
  max_connections: 200
admin:
  token: %s
governor:
  chores:
    sweep: "@every 1s"
%s%s`, url, name, lease, clusterToken, governor, more)
	r := startRelay(t, relayOptions{Config: cfg, Upstream: upstream, Args: append([]string{"--admin", admin}, args...)})
	if err := waitListening(admin, 20*time.Second, r.exited); err != nil {
		t.Fatal(err)
	}
	return &clusterNode{relay: r, Name: name, Admin: admin}
}

// marketingOffer is a marketing message for ann with a priority, keyed by
// X-Test-Seq.
func marketingOffer(seq, priority int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: <news@shop.test>\r\nTo: <ann@example.test>\r\n")
	fmt.Fprintf(&b, "Subject: offer %d\r\n", seq)
	fmt.Fprintf(&b, "Message-ID: <offer-%d@shop.test>\r\n", seq)
	fmt.Fprintf(&b, "List-Unsubscribe: <mailto:unsubscribe@shop.test>\r\nX-Kadenz-Topics: shoes\r\n")
	fmt.Fprintf(&b, "X-Kadenz-Priority: %d\r\nX-Test-Seq: %d\r\n\r\n", priority, seq)
	fmt.Fprintf(&b, "Offer %d: our new collection, with colours and sizes for every season.\r\n", seq)
	return b.Bytes()
}

// TestClusterCapAndAuctionAcrossNodes: mail for one recipient submitted in
// turn to three nodes is decided as if one node had taken it all: the
// hold-window auction releases the best message (priority 95) and the cap
// of one a day holds for the rest of the day, although every node runs an
// engine. The nodes run on virtual clocks stepped together.
func TestClusterCapAndAuctionAcrossNodes(t *testing.T) {
	url := pgtest.URL(t)
	up := startUpstream(t, "127.0.0.1:0", "X-Test-Seq")
	const start = "virtual:2026-11-23T10:00:00Z" // a Monday morning, outside quiet hours
	gov := "  caps:\n    per_day: 1\n"
	var nodes []*clusterNode
	for i := range 3 {
		nodes = append(nodes, startClusterNode(t, fmt.Sprintf("n%d", i+1), url, up.Addr, "3s", gov, "--clock", start))
	}
	priorities := []int{10, 30, 95, 20, 40, 5} // seq 2 is the best
	for seq, p := range priorities {
		n := nodes[seq%3]
		c, err := dialSMTP(n.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := submit(c, "news@shop.test", "ann@example.test", marketingOffer(seq, p)); err != nil {
			t.Fatalf("submit %d to %s: %v", seq, n.Name, err)
		}
		c.Close()
	}
	step := func(by string) {
		for _, n := range nodes {
			advanceClock(t, n.Admin, clusterToken, by)
		}
		for _, n := range nodes {
			waitCaughtUp(t, n.Admin, clusterToken)
		}
	}
	delivered := func() int { total, _, _ := up.counts(); return total }
	for i := 0; i < 96 && delivered() == 0; i++ {
		step("15m")
	}
	if !waitFor(20*time.Second, func() bool { return delivered() >= 1 }) {
		t.Fatal("nothing was released within a day of virtual time")
	}
	// The rest of the day: no node may release another.
	for range 22 {
		step("1h")
	}
	total, distinct, _ := up.counts()
	if total != 1 || !up.has("2") {
		var got []string
		for seq := range priorities {
			if up.has(strconv.Itoa(seq)) {
				got = append(got, strconv.Itoa(seq))
			}
		}
		t.Fatalf("delivered %d messages (%d distinct: X-Test-Seq %v) within a day; want only seq 2 (priority 95)", total, distinct, got)
	}

	// Any node's admin API shows the whole cluster: the same decider.
	var deciders []string
	for _, n := range nodes {
		var leases []struct{ Name, Owner string }
		if err := json.Unmarshal(adminGet(t, n.Admin, clusterToken, "/v1/leases"), &leases); err != nil {
			t.Fatal(err)
		}
		for _, l := range leases {
			if l.Name == "decider" {
				deciders = append(deciders, l.Owner)
			}
		}
	}
	if len(deciders) != 3 || deciders[0] == "" || deciders[1] != deciders[0] || deciders[2] != deciders[0] {
		t.Errorf("GET /v1/leases on the three nodes: decider held by %v; want one node, seen alike from all", deciders)
	}

	// Each node's /metrics carries its node name.
	for _, n := range nodes {
		body := adminGet(t, n.Admin, clusterToken, "/metrics")
		if !bytes.Contains(body, []byte(`kadenz_messages_accepted_total{class="marketing",node="`+n.Name+`"}`)) {
			t.Errorf("%s: /metrics has no accepted counter labelled node=%q", n.Name, n.Name)
		}
	}
}

// clusterMessage is message seq of the kill test: even ones transactional,
// odd ones marketing (a List-Unsubscribe header), each to its own
// recipient.
func clusterMessage(run string, seq int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: <shop@sender.test>\r\nTo: <rcpt-%d@receiver.test>\r\n", seq)
	fmt.Fprintf(&b, "Subject: cluster test message %d\r\n", seq)
	fmt.Fprintf(&b, "Message-ID: <cluster-%d-%s@kadenz.test>\r\n", seq, run)
	if seq%2 == 1 {
		fmt.Fprintf(&b, "List-Unsubscribe: <mailto:unsubscribe@sender.test>\r\n")
	}
	fmt.Fprintf(&b, "X-Test-Seq: %d\r\n\r\n", seq)
	for i := range 12 {
		fmt.Fprintf(&b, "line %02d of message %06d: the quick brown fox jumps over the lazy dog\r\n", i, seq)
	}
	return b.Bytes()
}

// TestClusterKillOneNodeLosesNothing: three nodes take mail from
// concurrent clients, both classes; one node is SIGKILLed in the middle.
// Every message that got a 250, from any node, reaches the smarthost: the
// others take over the dead node's claims (after the claim cutoff, here
// 5 s) and its leases (the decider and the chores, after 2 s).
// Marketing mail runs in shadow mode with a 1 s hold window, so it is
// decided (by whichever node holds the decider lease) and released at once.
func TestClusterKillOneNodeLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster kill test is long; skipped with -short")
	}
	url := pgtest.URL(t)
	up := startUpstream(t, "127.0.0.1:0", "X-Test-Seq")
	gov := "  mode: shadow\n  hold_window: 1s\n"
	var nodes []*clusterNode
	for i := range 3 {
		nodes = append(nodes, startClusterNode(t, fmt.Sprintf("n%d", i+1), url, up.Addr, "2s", gov))
	}
	// The victim is the node that decides: its death must move the
	// decider lease.
	var victim *clusterNode
	waitFor(10*time.Second, func() bool {
		for _, n := range nodes {
			if bytes.Contains(n.log.bytes(), tookDecider) {
				victim = n
				return true
			}
		}
		return false
	})
	if victim == nil {
		t.Fatal("no node took the decider lease")
	}

	const (
		total    = 5000
		sessions = 24
	)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	killAt := int64(total/3 + rand.IntN(total/6))
	var (
		mu        sync.Mutex
		accepted  = make([]bool, total)
		nAccepted atomic.Int64
		next      atomic.Int64
		killed    atomic.Bool
		errsEarly atomic.Int64
		errsLate  atomic.Int64
		wg        sync.WaitGroup
	)
	deadline := time.Now().Add(180 * time.Second)
	submitStart := time.Now()
	for s := range sessions {
		wg.Go(func() {
			for attempt := 0; time.Now().Before(deadline) && errsEarly.Load() < 20; attempt++ {
				n := nodes[(s+attempt)%3]
				if n == victim && killed.Load() {
					continue
				}
				c, err := dialSMTP(n.Addr)
				if err != nil {
					if !(n == victim && killed.Load()) {
						errsEarly.Add(1)
					}
					time.Sleep(50 * time.Millisecond)
					continue
				}
				for time.Now().Before(deadline) {
					seq := int(next.Add(1) - 1)
					if seq >= total {
						c.Close()
						return
					}
					if err := submit(c, "shop@sender.test", fmt.Sprintf("rcpt-%d@receiver.test", seq), clusterMessage(run, seq)); err != nil {
						if n == victim && killed.Load() {
							errsLate.Add(1)
						} else {
							errsEarly.Add(1)
							t.Logf("submit %d to %s: %v", seq, n.Name, err)
						}
						// This seq got no 250: it may or may not arrive.
						break
					}
					mu.Lock()
					accepted[seq] = true
					mu.Unlock()
					if nAccepted.Add(1) == killAt {
						killed.Store(true)
						victim.kill()
					}
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	submitTime := time.Since(submitStart)
	if !killed.Load() {
		t.Fatalf("%s never killed: %d accepted, %d client errors", victim.Name, nAccepted.Load(), errsEarly.Load())
	}
	if n := errsEarly.Load(); n > 0 {
		t.Errorf("%d submissions to live nodes failed", n)
	}
	var want []int
	for seq, ok := range accepted {
		if ok {
			want = append(want, seq)
		}
	}
	missing := func() []int {
		var m []int
		for _, seq := range want {
			if !up.has(strconv.Itoa(seq)) {
				m = append(m, seq)
			}
		}
		return m
	}
	drainStart := time.Now()
	drained := waitFor(120*time.Second, func() bool { return len(missing()) == 0 })
	received, distinct, dups := up.counts()
	lost := missing()
	t.Logf("accepted=%d of %d (submitted in %v, %s killed after %d; %d sessions cut by the kill) delivered=%d distinct=%d duplicates=%d lost=%d drain after submission=%v",
		len(want), total, submitTime.Round(time.Millisecond), victim.Name, killAt, errsLate.Load(),
		received, distinct, dups, len(lost), time.Since(drainStart).Round(time.Millisecond))
	if !drained || len(lost) > 0 {
		t.Fatalf("lost %d of %d accepted messages, e.g. X-Test-Seq %v", len(lost), len(want), lost[:min(len(lost), 20)])
	}
	// The singletons moved: a surviving node took the decider lease.
	var heir *clusterNode
	for _, n := range nodes {
		if n != victim && bytes.Contains(n.log.bytes(), tookDecider) {
			heir = n
		}
	}
	if heir == nil {
		t.Fatal("no surviving node took the decider lease over")
	}
	swept := 0
	for _, n := range nodes {
		if n != victim {
			swept += bytes.Count(n.log.bytes(), []byte("deliveries stuck in flight made due again"))
		}
	}
	t.Logf("decider lease: %s, then %s; sweeps that took claims over: %d", victim.Name, heir.Name, swept)
	for _, n := range nodes {
		if n != victim {
			n.stop(20 * time.Second)
		}
	}
}
