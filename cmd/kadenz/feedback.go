package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"kadenz/governor/feedback"
	"kadenz/governor/feedback/report"
)

// runFeedback is "kadenz feedback classify FILE|DIR...": it reads messages
// from files (one message each, or an mbox of several) or directories
// (every regular file below them, in name order) and prints what Kadenz
// makes of each. It is an offline tool: it opens no database and talks to
// no relay, so an operator can try it on their own bounces anywhere.
func runFeedback(args []string) int {
	if len(args) == 0 || args[0] != "classify" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			commandUsage("feedback")()
			return 0
		}
		commandUsage("feedback")()
		return 2
	}
	fset := flag.NewFlagSet("feedback classify", flag.ContinueOnError)
	fset.Usage = func() {
		commandUsage("feedback")()
		fmt.Fprintln(os.Stderr, "\nFlags:")
		fset.PrintDefaults()
		fmt.Fprintln(os.Stderr, "\nThe classes and reasons are the policy in docs/feedback.md. Exit status 1 if a file could not be read.")
	}
	asJSON := fset.Bool("json", false, "print one JSON object per message (JSON Lines)")
	if err := fset.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fset.NArg() == 0 {
		fset.Usage()
		return 2
	}
	files, err := messageFiles(fset.Args())
	if err != nil {
		fmt.Fprintf(os.Stderr, "kadenz feedback classify: %v\n", err)
		return 1
	}
	status := 0
	enc := json.NewEncoder(os.Stdout)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kadenz feedback classify: %v\n", err)
			status = 1
			continue
		}
		msgs := splitMbox(raw)
		for i, m := range msgs {
			name := f
			if len(msgs) > 1 {
				name = fmt.Sprintf("%s#%d", f, i+1)
			}
			c := classify(name, m)
			if *asJSON {
				enc.Encode(c)
			} else {
				printClassified(os.Stdout, c)
			}
		}
	}
	return status
}

// splitMbox splits an mbox file (RFC 4155: each message starts with a
// "From " line at the start of the file or after a blank line) into its
// messages; anything else is one message.
func splitMbox(raw []byte) [][]byte {
	if !bytes.HasPrefix(raw, []byte("From ")) {
		return [][]byte{raw}
	}
	var out [][]byte
	start := 0
	for i := 0; ; {
		j := bytes.Index(raw[i:], []byte("\n\nFrom "))
		if j < 0 {
			break
		}
		end := i + j + 2
		out = append(out, raw[start:end])
		start, i = end, end
	}
	return append(out, raw[start:])
}

// classified is what classify prints for one message.
type classified struct {
	File       string              `json:"file"`
	Kind       report.Kind         `json:"kind"`
	Format     string              `json:"format,omitempty"`
	Error      string              `json:"error,omitempty"` // the message is unreadable
	EnvelopeID string              `json:"envelope_id,omitempty"`
	Source     report.Source       `json:"envelope_source,omitempty"`
	MessageID  string              `json:"message_id,omitempty"`
	Outcomes   []classifiedOutcome `json:"outcomes"`
}

type classifiedOutcome struct {
	report.Outcome
	Effect string `json:"effect"`
}

func classifyFile(path string) (classified, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return classified{}, err
	}
	return classify(path, raw), nil
}

// classify reads one message; an unreadable one is reported as such.
func classify(path string, raw []byte) classified {
	c := classified{File: path}
	rep, err := report.Parse(raw)
	if err != nil {
		// Unreadable: the relay flags such a message $KadenzFailed.
		c.Kind, c.Error = report.KindUnknown, err.Error()
		c.Outcomes = []classifiedOutcome{{Outcome: report.Outcome{Class: report.ClassNone}, Effect: "flag the message $KadenzFailed and log why"}}
		return c
	}
	c.Kind, c.Format, c.EnvelopeID, c.Source, c.MessageID = rep.Kind, rep.Format, rep.EnvelopeID, rep.EnvelopeIDSource, rep.MessageID
	for _, o := range rep.Outcomes() {
		c.Outcomes = append(c.Outcomes, classifiedOutcome{Outcome: o, Effect: feedback.Effect(o.Class)})
	}
	return c
}

func printClassified(w io.Writer, c classified) {
	fmt.Fprintf(w, "%s: %s", c.File, c.Kind)
	if c.Format != "" {
		fmt.Fprintf(w, " (%s)", c.Format)
	}
	if c.EnvelopeID != "" {
		fmt.Fprintf(w, ", envelope %s from %s", c.EnvelopeID, c.Source)
	} else if c.MessageID != "" {
		fmt.Fprintf(w, ", Message-ID <%s>", c.MessageID)
	}
	fmt.Fprintln(w)
	if c.Error != "" {
		fmt.Fprintf(w, "  unreadable: %s\n", c.Error)
	}
	for _, o := range c.Outcomes {
		who := o.Recipient
		if who == "" {
			who = "(no recipient named)"
		}
		fmt.Fprintf(w, "  %-40s %-11s", who, o.Class)
		if o.Reason != "" {
			fmt.Fprintf(w, " %s", o.Reason)
		}
		if o.Status != "" {
			fmt.Fprintf(w, " %s", o.Status)
		}
		fmt.Fprintf(w, "\n    -> %s\n", o.Effect)
		if o.Diagnostic != "" {
			d := o.Diagnostic
			if len(d) > 160 {
				d = d[:160] + "..."
			}
			fmt.Fprintf(w, "    %q\n", d)
		}
	}
}

// messageFiles expands the arguments: files as given, directories to the
// regular files below them (hidden ones and manifests skipped), sorted.
func messageFiles(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, a)
			continue
		}
		var found []string
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			name := d.Name()
			if p != a && strings.HasPrefix(name, ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() && !strings.HasSuffix(name, ".tsv") && !strings.HasSuffix(name, ".md") {
				found = append(found, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}
