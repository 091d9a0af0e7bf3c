package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"kadenz/governor/admin/api"
)

// The operator commands: profile, forget, stats and campaign report. Each
// asks the running daemon's admin API, prints an aligned table for people
// or the API's JSON with --json, and exits 0 on success, 1 when the
// daemon refused or could not be reached, 2 on a usage error.

// opCommand is what the four commands share: flags, one admin call, and
// either JSON or a table.
type opCommand struct {
	name   string
	fs     *flag.FlagSet
	admin  adminFlags
	asJSON *bool
	stdout io.Writer
	stderr io.Writer
}

func newOpCommand(name string, stdout, stderr io.Writer) *opCommand {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = commandUsage(name)
	c := &opCommand{name: name, fs: fs, stdout: stdout, stderr: stderr}
	c.admin = addAdminFlags(fs)
	c.asJSON = fs.Bool("json", false, "print the API's answer as JSON")
	return c
}

// parse parses args and checks the number of arguments; false means exit 2.
func (c *opCommand) parse(args []string, nargs int) bool {
	if err := c.fs.Parse(args); err != nil {
		return false
	}
	if c.fs.NArg() != nargs {
		c.fs.Usage()
		return false
	}
	return true
}

// finish prints v as JSON or with table, and returns the exit code.
func (c *opCommand) finish(err error, v any, table func(io.Writer)) int {
	if err != nil {
		fmt.Fprintf(c.stderr, "kadenz %s: %v\n", c.name, err)
		return 1
	}
	if *c.asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(v)
		return 0
	}
	table(c.stdout)
	return 0
}

func runProfile(args []string) int { return profileCommand(args, os.Stdout, os.Stderr) }

func profileCommand(args []string, stdout, stderr io.Writer) int {
	c := newOpCommand("profile", stdout, stderr)
	limit := c.fs.Int("limit", 50, "at most `N` envelopes, the latest first")
	all := c.fs.Bool("all", false, "every envelope, page after page (overrides --limit)")
	after := c.fs.String("after", "", "start after this page `token` (printed when a listing stops at --limit)")
	if !c.parse(args, 1) {
		return 2
	}
	if *limit < 1 {
		c.fs.Usage()
		return 2
	}
	// The first page carries the profile and the total; later pages (of
	// up to 1000, as the API allows) only add envelopes.
	var v api.ProfileView
	next := *after
	for first := true; ; first = false {
		n := min(profilePageSize, *limit-len(v.Envelopes))
		if *all {
			n = profilePageSize
		}
		q := url.Values{"limit": {fmt.Sprint(n)}}
		if next != "" {
			q.Set("after", next)
		}
		var page api.ProfileView
		var err error
		next, err = c.admin.getPage("/v1/profiles/"+url.PathEscape(c.fs.Arg(0))+"?"+q.Encode(), &page)
		if err != nil {
			return c.finish(err, nil, nil)
		}
		if first {
			v = page
		} else {
			v.Envelopes = append(v.Envelopes, page.Envelopes...)
		}
		if next == "" || (!*all && len(v.Envelopes) >= *limit) {
			break
		}
	}
	code := c.finish(nil, &v, func(w io.Writer) { printProfile(w, &v) })
	if next != "" && code == 0 {
		fmt.Fprintf(stderr, "kadenz profile: older envelopes are stored; go on with --after %s (or list them all with --all)\n", next)
	}
	return code
}

var profilePageSize = 1000 // a variable so tests can page through a short list

func printProfile(w io.Writer, v *api.ProfileView) {
	fmt.Fprintf(w, "Recipient %s: %d envelopes stored", v.Address, v.Total)
	if v.Suppressed {
		fmt.Fprint(w, "; marketing mail is stopped (unsubscribed, complained or hard-bounced)")
	}
	fmt.Fprintln(w)
	var p struct {
		Timezone string `json:"timezone"`
		History  []struct {
			At time.Time `json:"at"`
		} `json:"history"`
	}
	if json.Unmarshal(v.Profile, &p) == nil && (p.Timezone != "" || len(p.History) > 0) {
		fmt.Fprintf(w, "Profile: time zone %s, %d marketing releases remembered\n", cmpOr(p.Timezone, "default"), len(p.History))
	}
	if len(v.Envelopes) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ENVELOPE\tCREATED\tSTATE\tLAST DECISION")
	for _, e := range v.Envelopes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.ID, e.Created.Format(time.RFC3339), e.State, lastDecision(e.Decisions))
	}
	tw.Flush()
}

// lastDecision summarises an envelope's latest decision in a few words.
func lastDecision(raw json.RawMessage) string {
	var recs []struct {
		Action  string   `json:"action"`
		Would   string   `json:"would"`
		Reasons []string `json:"reasons"`
	}
	if json.Unmarshal(raw, &recs) != nil || len(recs) == 0 {
		return "-"
	}
	d := recs[len(recs)-1]
	s := d.Action
	if d.Would != "" {
		s += " (would " + d.Would + ")"
	}
	if len(d.Reasons) > 0 {
		s += ": " + strings.Join(d.Reasons, ", ")
	}
	return s
}

func cmpOr(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

func runForget(args []string) int { return forgetCommand(args, os.Stdout, os.Stderr) }

func forgetCommand(args []string, stdout, stderr io.Writer) int {
	c := newOpCommand("forget", stdout, stderr)
	if !c.parse(args, 1) {
		return 2
	}
	var v api.ForgetResult
	err := c.admin.post("/v1/forget", map[string]string{"address": c.fs.Arg(0)}, &v)
	return c.finish(err, &v, func(w io.Writer) {
		e := v.Erased
		fmt.Fprintf(w, "Forgot %s:\n", v.Address)
		for _, row := range []struct {
			n    int
			what string
		}{
			{e.Envelopes, "envelopes erased"},
			{e.Held, "  of them held"},
			{e.Queued, "  of them queued, not yet sent"},
			{e.Final, "  of them already final"},
			{e.Decisions, "envelopes' decision records erased"},
			{e.Messages, "messages erased"},
			{e.Bodies, "message bodies erased"},
			{e.HeaderIDs, "Message-ID index entries erased"},
			{e.Profiles, "profiles erased"},
			{e.Suppressions, "suppression entries now keyed by a hash of the address"},
			{e.EventIDs, "event IDs now kept as hashes"},
			{v.OutboxFiles, "outbox files removed"},
			{v.ScrubbedPages, "freed database pages overwritten"},
			{e.SharedBodies, "bodies kept: other recipients still wait for them"},
			{e.Kept, "envelopes kept: in delivery or transactional (run forget again later)"},
		} {
			fmt.Fprintf(w, "%6d  %s\n", row.n, row.what)
		}
		if e.Tombstone {
			fmt.Fprintln(w, "A hashed tombstone keeps the address out of marketing mail, as it had asked.")
		}
		if v.Incomplete != "" {
			fmt.Fprintf(w, "Not finished: %s. Run forget again.\n", v.Incomplete)
		}
	})
}

func runStats(args []string) int { return statsCommand(args, os.Stdout, os.Stderr) }

func statsCommand(args []string, stdout, stderr io.Writer) int {
	c := newOpCommand("stats", stdout, stderr)
	last := c.fs.String("last", "24h", "the `period` before now to count (a Go duration); ignored with --since")
	since := c.fs.String("since", "", "count envelopes created from this `time` (RFC 3339)")
	until := c.fs.String("until", "", "and before this `time` (RFC 3339); now if unset")
	if !c.parse(args, 0) {
		return 2
	}
	q := url.Values{}
	if *since != "" {
		q.Set("since", *since)
	} else {
		q.Set("last", *last)
	}
	if *until != "" {
		q.Set("until", *until)
	}
	var v api.Stats
	err := c.admin.get("/v1/stats?"+q.Encode(), &v)
	return c.finish(err, &v, func(w io.Writer) {
		fmt.Fprintf(w, "From %s to %s: %d messages, %d envelopes (%d to holdout recipients)\n",
			v.Since.Format(time.RFC3339), v.Until.Format(time.RFC3339), v.Messages, v.Envelopes, v.Holdout)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, section := range []struct {
			title  string
			counts map[string]int
		}{{"class", v.ByClass}, {"state", v.ByState}, {"decision", v.ByAction}, {"reason", v.ByReason}} {
			if len(section.counts) == 0 {
				continue
			}
			fmt.Fprintf(tw, "\n%s\tCOUNT\n", strings.ToUpper(section.title))
			keys := make([]string, 0, len(section.counts))
			for k := range section.counts {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				fmt.Fprintf(tw, "%s\t%d\n", cmpOr(k, "(none)"), section.counts[k])
			}
		}
		tw.Flush()
		if f := v.ShadowForecast; f != nil {
			fmt.Fprintf(w, "\nShadow mode sent %d governed marketing envelopes; enforce would have released %d (%.1f%%), "+
				"suppressed %d (%.1f%%), held %d for review, and still holds %d\n",
				f.Decided, f.WouldRelease, 100*f.ReleaseShare, f.WouldSuppress, 100*f.SuppressShare, f.WouldReview, f.Pending)
		}
	})
}

func runCampaign(args []string) int { return campaignCommand(args, os.Stdout, os.Stderr) }

func campaignCommand(args []string, stdout, stderr io.Writer) int {
	sub := ""
	if len(args) > 0 {
		sub = args[0]
	}
	c := newOpCommand("campaign "+sub, stdout, stderr)
	switch sub {
	case "report":
		if !c.parse(args[1:], 1) {
			return 2
		}
		var v api.CampaignReport
		err := c.admin.get("/v1/campaigns/"+url.PathEscape(c.fs.Arg(0))+"/report", &v)
		return c.finish(err, &v, func(w io.Writer) { printCampaignReport(w, &v) })
	case "suspend", "resume":
		if !c.parse(args[1:], 1) {
			return 2
		}
		var v api.CampaignChange
		err := c.admin.post("/v1/campaigns/"+url.PathEscape(c.fs.Arg(0))+"/"+sub, nil, &v)
		return c.finish(err, &v, func(w io.Writer) {
			what := map[string]string{"suspend": "suspended; moved to review", "resume": "resumed; handed back to the engine"}[sub]
			fmt.Fprintf(w, "campaign %s %s: %d envelope(s)\n", v.Campaign, what, len(v.Changed))
		})
	case "suspended":
		if !c.parse(args[1:], 0) {
			return 2
		}
		var v []api.SuspendedCampaign
		err := c.admin.get("/v1/campaigns/suspended", &v)
		return c.finish(err, &v, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CAMPAIGN\tSUSPENDED AT")
			for _, s := range v {
				fmt.Fprintf(tw, "%s\t%s\n", s.Campaign, s.At.Format(time.RFC3339))
			}
			tw.Flush()
		})
	}
	fmt.Fprintln(stderr, "kadenz campaign: want a subcommand: report NAME, suspend NAME, resume NAME or suspended")
	commandUsage("campaign")()
	return 2
}

func printCampaignReport(w io.Writer, v *api.CampaignReport) {
	fmt.Fprintf(w, "Campaign %s: %d messages, %d envelopes\n", v.Campaign, v.Messages, v.Envelopes)
	if v.Subject != "" {
		fmt.Fprintf(w, "Latest subject: %s\n", v.Subject)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "group\tenvelopes\treleased\tdeferred\tsuppressed\theld\tdelivered\tfailed\t")
	for _, g := range []struct {
		name string
		r    api.GroupReport
	}{{"governed", v.Governed}, {"holdout", v.Holdout}} {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", g.name, g.r.Envelopes, g.r.Released, g.r.Deferred,
			g.r.Suppressed, g.r.Held, g.r.Delivered, g.r.Failed)
	}
	tw.Flush()
	e := v.Engagement
	fmt.Fprintf(w, "\nengagement on the latest released governed mail (%d looked up, %d still in recipients' histories): %d opened, %d clicked, %d replied\n",
		e.Sampled, e.Remembered, e.Opened, e.Clicked, e.Replied)
	if len(v.SuppressedBy) > 0 {
		fmt.Fprintln(w, "\nsuppressed by reason:")
		keys := make([]string, 0, len(v.SuppressedBy))
		for k := range v.SuppressedBy {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  %-24s %d\n", k, v.SuppressedBy[k])
		}
	}
}
