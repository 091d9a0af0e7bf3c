package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"kadenz/governor"
	"kadenz/governor/admin/api"
	"kadenz/governor/intake"
	"kadenz/governor/relaytest"
)

// The real CLI against a running relay's admin API, with a token.
func TestQueueCommandAgainstRunningRelay(t *testing.T) {
	clock := governor.NewVirtualClock(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	r := relaytest.Start(t, governor.Options{Config: relaytest.Config(t, "", true, "s3cret"), Clock: clock})
	msg := "From: news@shop.test\r\nTo: ann@example.test\r\nSubject: Winter boots\r\nList-Unsubscribe: <mailto:u@shop.test>\r\n" +
		"X-Kadenz-Campaign: winter\r\n\r\nBoots for the winter.\r\n"
	if _, err := r.Submit(&intake.Submission{From: "news@shop.test", To: []string{"ann@example.test"}, Data: []byte(msg), Received: clock.Now()}); err != nil {
		t.Fatal(err)
	}
	admin := []string{"--admin", r.AdminAddr().String(), "--token", "s3cret"}
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := queueMain(args, &out, &errOut)
		return code, out.String(), errOut.String()
	}

	code, out, stderr := run(append([]string{"ls"}, admin...)...)
	if code != 0 || !strings.Contains(out, "SUBJECT") || !strings.Contains(out, "held") || !strings.Contains(out, "Winter boots") {
		t.Fatalf("ls: %d\n%s%s", code, out, stderr)
	}
	if code, out, stderr = run(append([]string{"hold", "--campaign", "winter"}, admin...)...); code != 0 || !strings.Contains(out, "held for review 1") {
		t.Fatalf("hold: %d %s%s", code, out, stderr)
	}
	code, out, _ = run(append([]string{"ls", "--state", "review", "--json"}, admin...)...)
	var list []api.QueueEntry
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list) != 1 || list[0].Campaign != "winter" {
		t.Fatalf("ls --json: %d %v %s", code, err, out)
	}
	id := list[0].ID
	if code, out, stderr = run(append(append([]string{"release"}, admin...), id)...); code != 0 || !strings.Contains(out, id) {
		t.Fatalf("release: %d %s%s", code, out, stderr)
	}

	// The daemon says no: 1. Wrong use: 2.
	for _, c := range []struct {
		args []string
		want int
	}{
		{append(append([]string{"release"}, admin...), id), 1},          // no longer in review
		{append(append([]string{"drop"}, admin...), "no-such-id"), 1},   // unknown
		{[]string{"release", "--admin", r.AdminAddr().String(), id}, 1}, // no token
		{append([]string{"release"}, admin...), 2},                      // nothing named
		{append(append([]string{"drop", "--campaign", "winter"}, admin...), id), 2},
		{[]string{"ls", "--bogus"}, 2},
		{[]string{"explode"}, 2},
		{nil, 2},
	} {
		if code, _, stderr := run(c.args...); code != c.want {
			t.Errorf("queue %q: exit %d, want %d (%s)", c.args, code, c.want, stderr)
		}
	}
}

// ls follows the daemon's pages (Link rel="next"): --all lists every
// envelope once, in the daemon's order, however small the pages; --limit
// stops and says how to go on, and --after goes on from there.
func TestQueueListFollowsPages(t *testing.T) {
	clock := governor.NewVirtualClock(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	r := relaytest.Start(t, governor.Options{Config: relaytest.Config(t, "", true, ""), Clock: clock})
	for i := range 7 {
		msg := fmt.Sprintf("From: news@shop.test\r\nTo: r%d@example.test\r\nSubject: Boots %d\r\nList-Unsubscribe: <mailto:u@shop.test>\r\n\r\nBoots.\r\n", i, i)
		if _, err := r.Submit(&intake.Submission{From: "news@shop.test", To: []string{fmt.Sprintf("r%d@example.test", i)}, Data: []byte(msg), Received: clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	old := queuePageSize
	queuePageSize = 2
	defer func() { queuePageSize = old }()
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := queueMain(append(args, "--admin", r.AdminAddr().String()), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	ids := func(out string) []string {
		var list []api.QueueEntry
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		var ids []string
		for _, e := range list {
			ids = append(ids, e.ID)
		}
		return ids
	}
	code, out, stderr := run("ls", "--state", "held", "--all", "--json")
	all := ids(out)
	if code != 0 || len(all) != 7 {
		t.Fatalf("ls --all: %d %v %s", code, all, stderr)
	}
	seen := map[string]bool{}
	for _, id := range all {
		if seen[id] {
			t.Fatalf("ls --all listed %s twice: %v", id, all)
		}
		seen[id] = true
	}
	code, out, stderr = run("ls", "--state", "held", "--limit", "3", "--json")
	first := ids(out)
	after := regexp.MustCompile(`--after (\S+)`).FindStringSubmatch(stderr)
	if code != 0 || !slices.Equal(first, all[:3]) || after == nil {
		t.Fatalf("ls --limit 3: %d %v, want %v and a token; stderr %q", code, first, all[:3], stderr)
	}
	code, out, stderr = run("ls", "--state", "held", "--limit", "10", "--after", after[1], "--json")
	if rest := ids(out); code != 0 || !slices.Equal(rest, all[3:]) || stderr != "" {
		t.Fatalf("ls --after: %d %v, want %v; stderr %q", code, rest, all[3:], stderr)
	}
	if code, _, _ := run("ls", "--state", "held", "--after", "bogus"); code != 1 {
		t.Errorf("ls with a bad token: exit %d, want 1", code)
	}
}

// kadenz profile follows the API's pages as queue ls does: --all lists
// every envelope, --limit stops with a token, --after goes on from it.
func TestProfileFollowsPages(t *testing.T) {
	clock := governor.NewVirtualClock(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	r := relaytest.Start(t, governor.Options{Config: relaytest.Config(t, "", true, ""), Clock: clock})
	for i := range 7 {
		msg := fmt.Sprintf("From: news@shop.test\r\nTo: ann@example.test\r\nSubject: Boots %d\r\nList-Unsubscribe: <mailto:u@shop.test>\r\n\r\nBoots.\r\n", i)
		if _, err := r.Submit(&intake.Submission{From: "news@shop.test", To: []string{"ann@example.test"}, Data: []byte(msg), Received: clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	old := profilePageSize
	profilePageSize = 2
	defer func() { profilePageSize = old }()
	run := func(args ...string) (int, api.ProfileView, string) {
		var out, errOut bytes.Buffer
		code := profileCommand(append([]string{"--admin", r.AdminAddr().String(), "--json"}, append(args, "ann@example.test")...), &out, &errOut)
		var v api.ProfileView
		if code == 0 {
			if err := json.Unmarshal(out.Bytes(), &v); err != nil {
				t.Fatalf("%v: %s", err, out.String())
			}
		}
		return code, v, errOut.String()
	}
	ids := func(v api.ProfileView) []string {
		var ids []string
		for _, e := range v.Envelopes {
			ids = append(ids, e.ID)
		}
		return ids
	}
	code, v, stderr := run("--all")
	all := ids(v)
	if code != 0 || len(all) != 7 || v.Total != 7 || stderr != "" {
		t.Fatalf("profile --all: %d %v (total %d) %q", code, all, v.Total, stderr)
	}
	code, v, stderr = run("--limit", "3")
	after := regexp.MustCompile(`--after (\S+)`).FindStringSubmatch(stderr)
	if code != 0 || !slices.Equal(ids(v), all[:3]) || after == nil {
		t.Fatalf("profile --limit 3: %d %v, want %v and a token; stderr %q", code, ids(v), all[:3], stderr)
	}
	code, v, stderr = run("--after", after[1], "--all")
	if code != 0 || !slices.Equal(ids(v), all[3:]) {
		t.Fatalf("profile --after: %d %v, want %v; %q", code, ids(v), all[3:], stderr)
	}
}
