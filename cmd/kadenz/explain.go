package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"kadenz/governor/admin/api"
)

func runExplain(args []string) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.Usage = commandUsage("explain")
	admin := addAdminFlags(fs)
	asJSON := fs.Bool("json", false, "print the explanation as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	var x api.Explanation
	if err := admin.get("/v1/explain/"+url.PathEscape(fs.Arg(0)), &x); err != nil {
		fmt.Fprintf(os.Stderr, "kadenz explain: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(x)
		return 0
	}
	printExplanation(os.Stdout, &x)
	return 0
}

func printExplanation(w io.Writer, x *api.Explanation) {
	printMessage(w, x)
	for i := range x.Also {
		fmt.Fprintf(w, "\nAlso carrying this Message-ID:\n")
		printMessage(w, &x.Also[i])
	}
}

func printMessage(w io.Writer, x *api.Explanation) {
	m := x.Message
	fmt.Fprintf(w, "Message %s from <%s>, received %s", m.ID, m.From, m.Received.Format(time.RFC3339))
	if m.HeaderID != "" {
		fmt.Fprintf(w, ", Message-ID <%s>", m.HeaderID)
	}
	fmt.Fprintf(w, "\nClass: %s (%s)\n", m.Class, m.ClassReason)
	if x.BodyPurged {
		fmt.Fprintln(w, "Body: purged when its retention period ended; what happened to it is still recorded")
	}
	for _, e := range x.Envelopes {
		fmt.Fprintf(w, "\n%s to <%s>: %s", e.ID, e.To, e.State)
		if !e.Due.IsZero() {
			fmt.Fprintf(w, ", due %s", e.Due.Format(time.RFC3339))
		}
		if e.Holdout {
			fmt.Fprint(w, " (holdout recipient: sent undelayed so the effect can be measured)")
		}
		if e.LastError != "" {
			fmt.Fprintf(w, "\n  last error after %d attempts: %s", e.Attempts, e.LastError)
		}
		fmt.Fprintln(w)
		var decisions []struct {
			DecidedAt   time.Time `json:"decided_at"`
			Action      string    `json:"action"`
			Would       string    `json:"would"`
			Explanation string    `json:"explanation"`
		}
		json.Unmarshal(e.Decisions, &decisions)
		for _, d := range decisions {
			fmt.Fprintf(w, "  %s %s", d.DecidedAt.Format(time.RFC3339), d.Action)
			if d.Would != "" {
				fmt.Fprintf(w, " (shadow mode; enforce would %s)", d.Would)
			}
			fmt.Fprintf(w, ": %s\n", d.Explanation)
		}
	}
}
