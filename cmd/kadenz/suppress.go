package main

import (
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
	var out []byte
	var err error
	switch rest[0] {
	case "ls":
		if out, err = admin.do(http.MethodGet, "/v1/suppressions", "", nil); err != nil {
			return fail(err)
		}
		if !*asJSON {
			var list []api.Suppression
			if err := json.Unmarshal(out, &list); err != nil {
				return fail(err)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ADDRESS\tREASON\tSINCE\tSOURCE")
			for _, s := range list {
				addr := s.Address
				if addr == "" {
					addr = "(erased, hash " + s.Pseudonym + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", addr, s.Reason, s.At.UTC().Format(time.RFC3339), s.Source)
			}
			tw.Flush()
			return 0
		}
	case "add":
		body, _ := json.Marshal(api.SuppressionRequest{Address: rest[1], Reason: *reason})
		if out, err = admin.do(http.MethodPost, "/v1/suppressions", "application/json", body); err != nil {
			return fail(err)
		}
		if !*asJSON {
			fmt.Printf("suppressed %s\n", rest[1])
			return 0
		}
	case "rm":
		if out, err = admin.do(http.MethodDelete, "/v1/suppressions/"+url.PathEscape(rest[1]), "", nil); err != nil {
			return fail(err)
		}
		if !*asJSON {
			fmt.Printf("removed %s (its unsubscribe, complaint and bounce marks are cleared too)\n", rest[1])
			return 0
		}
	case "import":
		data, err := os.ReadFile(rest[1])
		if err != nil {
			return fail(err)
		}
		if out, err = admin.do(http.MethodPost, "/v1/suppressions/import", "text/csv", data); err != nil {
			return fail(err)
		}
		if !*asJSON {
			var res struct{ Read, Added int }
			json.Unmarshal(out, &res)
			fmt.Printf("read %d addresses, %d new on the list\n", res.Read, res.Added)
			return 0
		}
	case "export":
		if out, err = admin.do(http.MethodGet, "/v1/suppressions/export", "", nil); err != nil {
			return fail(err)
		}
		os.Stdout.Write(out)
		return 0
	}
	os.Stdout.Write(out)
	return 0
}
