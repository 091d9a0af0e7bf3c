package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"text/tabwriter"
	"time"

	"kadenz/governor/admin/api"
)

// kadenz queue: list what waits, and release, drop or hold marketing mail,
// through the running daemon's admin API.

const queueUsage = `Usage:
  kadenz queue ls [--state S] [--campaign C] [--recipient R] [--limit N | --all] [--after TOKEN] [--json]
  kadenz queue release|drop|hold [--admin ADDR] [--token TOKEN] (ID... | --campaign C)

ls lists waiting mail (review, held, queued, deferred, delivering unless --state):
the first 100 envelopes unless --limit or --all, fetched from the daemon in
pages, each a seek in the state's index however long the queue is.
release moves mail in review to the delivery queue, due now.
drop suppresses held or review mail ("dropped by operator").
hold puts held or queued marketing mail into review.

Exit status: 0 done, 1 the daemon refused or found nothing, 2 usage.

Example:
  kadenz queue ls --state review
  kadenz queue release --campaign spring-sale
`

func runQueue(args []string) int {
	return queueMain(args, os.Stdout, os.Stderr)
}

func queueMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, queueUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "ls":
		return queueList(args[1:], stdout, stderr)
	case "release", "drop", "hold":
		return queueAct(args[0], args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "kadenz queue: unknown action %q\n\n%s", args[0], queueUsage)
	return 2
}

func queueFlags(name string, stderr io.Writer) (*flag.FlagSet, adminFlags) {
	fs := flag.NewFlagSet("queue "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, queueUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs, addAdminFlags(fs)
}

// queuePageSize is how many envelopes ls asks for at a time.
var queuePageSize = 1000 // a variable so tests can page through a short queue

func queueList(args []string, stdout, stderr io.Writer) int {
	fs, admin := queueFlags("ls", stderr)
	state := fs.String("state", "", "only envelopes in this `state`")
	campaign := fs.String("campaign", "", "only mail of this `campaign`")
	rcpt := fs.String("recipient", "", "only mail to this `address`")
	limit := fs.Int("limit", 100, "at most `N` envelopes, fetched in pages of up to 1000")
	all := fs.Bool("all", false, "every envelope, page after page (overrides --limit)")
	after := fs.String("after", "", "start after this page `token` (printed when a listing stops at --limit)")
	asJSON := fs.Bool("json", false, "print the list as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 || *limit < 1 {
		fs.Usage()
		return 2
	}
	q := url.Values{}
	for key, v := range map[string]string{"state": *state, "campaign": *campaign, "recipient": *rcpt} {
		if v != "" {
			q.Set(key, v)
		}
	}
	out := newQueuePrinter(stdout, *asJSON)
	next, listed := *after, 0
	for {
		n := queuePageSize
		if !*all {
			n = min(n, *limit-listed)
		}
		q.Set("limit", fmt.Sprint(n))
		if next != "" {
			q.Set("after", next)
		}
		var page []api.QueueEntry
		var err error
		if next, err = admin.getPage("/v1/queue?"+q.Encode(), &page); err != nil {
			out.close()
			fmt.Fprintf(stderr, "kadenz queue ls: %v\n", err)
			return 1
		}
		out.print(page)
		listed += len(page)
		if next == "" {
			break
		}
		if !*all && listed >= *limit {
			out.close()
			fmt.Fprintf(stderr, "kadenz queue ls: more envelopes wait; go on with --after %s (or list them all with --all)\n", next)
			return 0
		}
	}
	out.close()
	return 0
}

// queuePrinter prints pages as they come, so a long listing starts at
// once and its memory does not grow with it: a table (columns sized per
// page) or one JSON array.
type queuePrinter struct {
	w      io.Writer
	asJSON bool
	n      int
}

func newQueuePrinter(w io.Writer, asJSON bool) *queuePrinter {
	return &queuePrinter{w: w, asJSON: asJSON}
}

func (p *queuePrinter) print(page []api.QueueEntry) {
	if p.asJSON {
		for _, e := range page {
			b, _ := json.MarshalIndent(e, "  ", "  ")
			sep := ",\n  "
			if p.n == 0 {
				sep = "[\n  "
			}
			fmt.Fprintf(p.w, "%s%s", sep, b)
			p.n++
		}
		return
	}
	tw := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
	if p.n == 0 {
		fmt.Fprintln(tw, "ID\tSTATE\tDUE\tTO\tCLASS\tCAMPAIGN\tATTEMPTS\tLAST\tSUBJECT")
	}
	for _, e := range page {
		due := "-"
		if !e.Due.IsZero() {
			due = e.Due.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.ID, e.State, due, e.To, dash(e.Class), dash(e.Campaign),
			e.Attempts, dash(e.LastAction), dash(e.Subject))
		p.n++
	}
	tw.Flush()
}

func (p *queuePrinter) close() {
	if !p.asJSON {
		return
	}
	if p.n == 0 {
		fmt.Fprintln(p.w, "[]")
		return
	}
	fmt.Fprintln(p.w, "\n]")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func queueAct(action string, args []string, stdout, stderr io.Writer) int {
	fs, admin := queueFlags(action, stderr)
	campaign := fs.String("campaign", "", "act on all mail of this `campaign` in the states the action applies to")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if (fs.NArg() == 0) == (*campaign == "") {
		fmt.Fprintf(stderr, "kadenz queue %s: give envelope IDs or --campaign, not both\n", action)
		return 2
	}
	body := api.QueueActionRequest{IDs: fs.Args(), Campaign: *campaign}
	var res api.QueueActionResult
	if err := admin.post("/v1/queue/"+action, body, &res); err != nil {
		fmt.Fprintf(stderr, "kadenz queue %s: %v\n", action, err)
		return 1
	}
	past := map[string]string{"release": "released", "drop": "dropped", "hold": "held for review"}[action]
	fmt.Fprintf(stdout, "%s %d envelope(s)\n", past, len(res.Changed))
	for _, id := range res.Changed {
		fmt.Fprintln(stdout, " ", id)
	}
	return 0
}
