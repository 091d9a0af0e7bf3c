package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"text/tabwriter"
	"time"

	"kadenz/governor/admin/api"
)

// kadenz suppress: the suppression list, through the daemon's admin API.

func runSuppress(args []string) int {
	fs := flag.NewFlagSet("suppress", flag.ContinueOnError)
	fs.Usage = commandUsage("suppress")
	admin := addAdminFlags(fs)
	asJSON := fs.Bool("json", false, "print the answer as JSON (ls, add, rm, import)")
	reason := fs.String("reason", "", "why the address is suppressed (add)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "kadenz suppress: %v\n", err)
		return 1
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return 2
	}
	want := map[string]int{"ls": 1, "add": 2, "rm": 2, "import": 2, "export": 1}
	if n, ok := want[rest[0]]; !ok || len(rest) != n {
		fs.Usage()
		return 2
	}
	out, err := suppressAction(admin, rest, *reason, *asJSON)
	if err != nil {
		return fail(err)
	}
	os.Stdout.Write(out)
	return 0
}

// suppressAction runs one action (rest: the action and its argument) and
// returns what to print: with --json the admin API's answer as it came,
// else lines for a person. export always prints the CSV.
func suppressAction(admin adminFlags, rest []string, reason string, asJSON bool) ([]byte, error) {
	switch rest[0] {
	case "ls":
		out, err := admin.do(http.MethodGet, "/v1/suppressions", "", nil)
		if err != nil || asJSON {
			return out, err
		}
		return suppressionTable(out)
	case "add":
		body, _ := json.Marshal(api.SuppressionRequest{Address: rest[1], Reason: reason})
		out, err := admin.do(http.MethodPost, "/v1/suppressions", "application/json", body)
		if err != nil || asJSON {
			return out, err
		}
		return fmt.Appendf(nil, "suppressed %s\n", rest[1]), nil
	case "rm":
		out, err := admin.do(http.MethodDelete, "/v1/suppressions/"+url.PathEscape(rest[1]), "", nil)
		if err != nil || asJSON {
			return out, err
		}
		return fmt.Appendf(nil, "removed %s (its unsubscribe, complaint and bounce marks are cleared too)\n", rest[1]), nil
	case "import":
		data, err := os.ReadFile(rest[1])
		if err != nil {
			return nil, err
		}
		out, err := admin.do(http.MethodPost, "/v1/suppressions/import", "text/csv", data)
		if err != nil || asJSON {
			return out, err
		}
		var res struct{ Read, Added int }
		json.Unmarshal(out, &res)
		return fmt.Appendf(nil, "read %d addresses, %d new on the list\n", res.Read, res.Added), nil
	default: // export
		return admin.do(http.MethodGet, "/v1/suppressions/export", "", nil)
	}
}

// suppressionTable is the list as a table for a person.
func suppressionTable(out []byte) ([]byte, error) {
	var list []api.Suppression
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tREASON\tSINCE\tSOURCE")
	for _, s := range list {
		addr := s.Address
		if addr == "" {
			addr = "(erased, hash " + s.Pseudonym + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", addr, s.Reason, s.At.UTC().Format(time.RFC3339), s.Source)
	}
	tw.Flush()
	return b.Bytes(), nil
}
