package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"kadenz/config"
	"kadenz/governor"
	"kadenz/governor/admin/api"
	"kadenz/governor/relaytest"
)

// startDaemon runs a relay in-process with its admin API on loopback, as
// `kadenz serve --admin` would, writing to the outbox.
func startDaemon(t *testing.T, token string) *governor.Relay {
	t.Helper()
	return relaytest.Start(t, governor.Options{Config: relaytest.Config(t, "", true, token)})
}

func send(t *testing.T, r *governor.Relay, to, msg string) {
	t.Helper()
	c, err := smtp.Dial(r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail("news@shop.test", []string{to}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
}

// cli runs one command against the daemon and returns its exit code and output.
func cli(t *testing.T, r *governor.Relay, cmd func([]string, io.Writer, io.Writer) int, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut strings.Builder
	code := cmd(append([]string{"--admin", r.AdminAddr().String(), "--token", "t0ken"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestOperatorCommands(t *testing.T) {
	r := startDaemon(t, "t0ken")
	marketing := "From: news@shop.test\r\nTo: ann@example.test\r\nSubject: Winter boots\r\nList-Unsubscribe: <mailto:u@shop.test>\r\n" +
		"X-Kadenz-Campaign: winter\r\nMessage-ID: <w1@shop.test>\r\n\r\nBoots.\r\n"
	send(t, r, "ann@example.test", marketing)
	send(t, r, "bob@example.test", strings.Replace(marketing, "w1@", "w2@", 1))

	code, out, errOut := cli(t, r, profileCommand, "ann@example.test")
	if code != 0 || !strings.Contains(out, "Recipient ann@example.test: 1 envelopes stored") || !strings.Contains(out, "held") {
		t.Errorf("profile: %d %q %q", code, out, errOut)
	}
	code, out, _ = cli(t, r, profileCommand, "--json", "ann@example.test")
	var pv api.ProfileView
	if code != 0 || json.Unmarshal([]byte(out), &pv) != nil || pv.Total != 1 {
		t.Errorf("profile --json: %d %q", code, out)
	}
	if code, _, errOut = cli(t, r, profileCommand, "nobody@example.test"); code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("profile of an unknown recipient: %d %q", code, errOut)
	}
	if code, _, _ = cli(t, r, profileCommand); code != 2 {
		t.Errorf("profile without an address: exit %d, want 2", code)
	}

	code, out, _ = cli(t, r, statsCommand, "--last", "1h")
	if code != 0 || !strings.Contains(out, "2 messages, 2 envelopes") || !strings.Contains(out, "marketing") {
		t.Errorf("stats: %d %q", code, out)
	}
	if code, _, _ = cli(t, r, statsCommand, "--last", "soon"); code != 1 {
		t.Errorf("stats with a bad period: exit %d, want 1", code)
	}

	code, out, _ = cli(t, r, func(args []string, o, e io.Writer) int {
		return campaignCommand(append([]string{"report"}, args...), o, e)
	}, "winter")
	if code != 0 || !strings.Contains(out, "Campaign winter: 2 messages, 2 envelopes") || !strings.Contains(out, "governed") ||
		!strings.Contains(out, "Latest subject: Winter boots") {
		t.Errorf("campaign report: %d %q", code, out)
	}
	if code := campaignCommand([]string{"list"}, &strings.Builder{}, &strings.Builder{}); code != 2 {
		t.Errorf("campaign without report: exit %d, want 2", code)
	}
	// A campaign with no mail, so the forget below still finds ann's mail
	// held.
	sub := func(name string) func([]string, io.Writer, io.Writer) int {
		return func(args []string, o, e io.Writer) int { return campaignCommand(append([]string{name}, args...), o, e) }
	}
	if code, out, _ = cli(t, r, sub("suspend"), "autumn"); code != 0 || !strings.Contains(out, "campaign autumn suspended") {
		t.Errorf("campaign suspend: %d %q", code, out)
	}
	if code, out, _ = cli(t, r, sub("suspended")); code != 0 || !strings.Contains(out, "autumn") {
		t.Errorf("campaign suspended: %d %q", code, out)
	}
	if code, out, _ = cli(t, r, sub("resume"), "autumn"); code != 0 || !strings.Contains(out, "campaign autumn resumed") {
		t.Errorf("campaign resume: %d %q", code, out)
	}
	if code, _, _ = cli(t, r, sub("resume"), "autumn"); code != 1 {
		t.Errorf("resuming a campaign that is not suspended: exit %d, want 1", code)
	}

	code, out, _ = cli(t, r, forgetCommand, "ann@example.test")
	if code != 0 || !strings.Contains(out, "     1  envelopes erased") {
		t.Errorf("forget: %d %q", code, out)
	}
	if code, _, errOut = cli(t, r, profileCommand, "ann@example.test"); code != 1 {
		t.Errorf("profile after forget: exit %d %q", code, errOut)
	}
	var bad strings.Builder
	if code := profileCommand([]string{"--admin", r.AdminAddr().String(), "--token", "wrong", "bob@example.test"}, &strings.Builder{}, &bad); code != 1 || !strings.Contains(bad.String(), "401") {
		t.Errorf("wrong token: exit %d %q", code, bad.String())
	}
}

// In shadow mode `kadenz stats` says what enforce would have done beside
// what was sent.
func TestStatsShowsShadowForecast(t *testing.T) {
	cfg := relaytest.Config(t, "", true, "t0ken")
	cfg.Governor.Mode = config.ModeShadow
	start := time.Date(2026, 11, 23, 22, 7, 0, 0, time.UTC) // quiet hours: enforce would defer to the morning
	r := relaytest.Start(t, governor.Options{Config: cfg, Clock: governor.NewVirtualClock(start)})
	marketing := "From: news@shop.test\r\nTo: ann@example.test\r\nSubject: Winter boots\r\nList-Unsubscribe: <mailto:u@shop.test>\r\n" +
		"X-Kadenz-Campaign: winter\r\nMessage-ID: <w1@shop.test>\r\n\r\nBoots.\r\n"
	send(t, r, "ann@example.test", marketing)
	req, _ := http.NewRequest(http.MethodPost, "http://"+r.AdminAddr().String()+"/v1/clock", strings.NewReader(`{"advance":"10m"}`))
	req.Header.Set("Authorization", "Bearer t0ken")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("moving the clock: %v %v", resp, err)
	}
	resp.Body.Close()
	var out string
	for i := 0; i < 500 && !strings.Contains(out, "Shadow mode sent 1 "); i++ { // until the engine has decided
		_, out, _ = cli(t, r, statsCommand, "--since", "2026-11-23T00:00:00Z", "--until", "2026-11-24T00:00:00Z")
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(out, "Shadow mode sent 1 governed marketing envelopes; enforce would have released") {
		t.Errorf("stats in shadow mode: %q", out)
	}
}
