package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"kadenz/governor"
)

// Commands that touch state talk to the running daemon's admin API: bbolt
// locks the database file, and a second process must never open it.

// adminFlags are the flags every admin-API command shares.
type adminFlags struct {
	addr, token *string
}

func addAdminFlags(fs *flag.FlagSet) adminFlags {
	return adminFlags{
		addr:  fs.String("admin", envOr("KADENZ_ADMIN", "127.0.0.1:8025"), "admin API `address` of the running kadenz (env KADENZ_ADMIN)"),
		token: fs.String("token", os.Getenv("KADENZ_ADMIN_TOKEN"), "admin API bearer `token` (env KADENZ_ADMIN_TOKEN)"),
	}
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// get fetches path from the admin API into v.
func (a adminFlags) get(path string, v any) error {
	req, err := http.NewRequest(http.MethodGet, "http://"+*a.addr+path, nil)
	if err != nil {
		return err
	}
	if *a.token != "" {
		req.Header.Set("Authorization", "Bearer "+*a.token)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("reaching kadenz's admin API (is serve running with --admin %s?): %w", *a.addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s", resp.Status, msg)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

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
	var x governor.Explanation
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

func printExplanation(w io.Writer, x *governor.Explanation) {
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
