// Command kadenz is the Kadenz relay and its command-line tools: one
// binary, a table of subcommands. See "kadenz help".
package main

import (
	"fmt"
	"os"
	"runtime/debug"
)

// command is one subcommand: its usage line, a one-line summary, an
// example, and what it runs.
type command struct {
	name    string
	args    string
	summary string
	example string
	run     func(args []string) int
}

var commands []command

func init() {
	commands = []command{
		{"serve", "[--config FILE] [--listen ADDR] [--data DIR] [--upstream HOST:PORT] [--admin ADDR] [--clock virtual:RFC3339]",
			"run the relay (with no config: 127.0.0.1:2525, data in ./kadenz-data, mail to the outbox)",
			"kadenz serve --config /etc/kadenz/kadenz.yaml", runServe},
		{"check-config", "FILE", "check a configuration file and print every problem in it",
			"kadenz check-config kadenz.example.yaml", runCheckConfig},
		{"explain", "[--admin ADDR] [--token TOKEN] [--json] ID",
			"explain what happened to a message and why (envelope ID, message ID or Message-ID)",
			"kadenz explain 06h0hh51xwchm3pfcs2g-1", runExplain},
		{"queue", "ls|release|drop|hold [--admin ADDR] [--token TOKEN] [FLAGS] [ID...]",
			"list waiting mail; release, drop or hold marketing mail for review (see 'kadenz queue help')",
			"kadenz queue release --campaign spring-sale", runQueue},
		{"profile", "[--admin ADDR] [--token TOKEN] [--json] [--limit N | --all] [--after TOKEN] ADDRESS",
			"show a recipient's profile and latest envelopes with their decisions",
			"kadenz profile ann@example.com", runProfile},
		{"forget", "[--admin ADDR] [--token TOKEN] [--json] ADDRESS",
			"erase everything stored about a recipient (GDPR) and report what was erased",
			"kadenz forget ann@example.com", runForget},
		{"stats", "[--admin ADDR] [--token TOKEN] [--json] [--last 24h | --since RFC3339] [--until RFC3339]",
			"count envelopes by class, state, decision and reason over a period",
			"kadenz stats --last 168h", runStats},
		{"campaign", "report|suspend|resume NAME | suspended [--admin ADDR] [--token TOKEN] [--json]",
			"report what became of a campaign's mail (released, deferred, suppressed by reason, holdout vs governed); suspend or resume it",
			"kadenz campaign suspend winter-sale", runCampaign},
		{"simulate", "[--recipients N] [--days D] [--seed S] [--mix default|tolerant|sensitive|relaxed] [--world classic|structured|heavy] [--look delay|next] [--bursts DURATION] [--strictness X] [--config FILE] [--shadow] [--json]",
			"compare send-all, fixed frequency caps (1-48 h) and Kadenz on a synthetic population, on virtual time",
			"kadenz simulate --recipients 200 --days 7 --seed 3", runSimulate},
		{"suppress", "[--admin ADDR] [--token TOKEN] [--json] [--reason TEXT] ls | add ADDRESS | rm ADDRESS | import FILE.csv | export",
			"list, add, remove, import (CSV address,reason) or export (CSV) the suppression list",
			"kadenz suppress --reason \"asked by phone\" add ann@example.com", runSuppress},
		{"feedback", "classify [--json] FILE|DIR...",
			"classify bounces, complaints and replies offline: class, reason, recipients, status and what Kadenz would do",
			"kadenz feedback classify ~/Maildir/.Bounces/cur", runFeedback},
		{"db", "check|recover|backup|copy [FLAGS] ...", "check the database, copy what is readable out of a damaged one, back it up, or copy it to PostgreSQL (see 'kadenz db help')",
			"kadenz db backup /backup/kadenz.db", runDB},
		{"version", "", "print the version", "kadenz version", runVersion},
		{"help", "[COMMAND]", "show help for kadenz or one command", "kadenz help serve", runHelp},
	}
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	name := os.Args[1]
	if name == "-h" || name == "--help" {
		name = "help"
	}
	for _, c := range commands {
		if c.name == name {
			os.Exit(c.run(os.Args[2:]))
		}
	}
	fmt.Fprintf(os.Stderr, "kadenz: unknown command %q\n\n", name)
	usage()
	os.Exit(2)
}

func usage() {
	fmt.Fprintln(os.Stderr, "Kadenz: an SMTP relay that sends fewer, better-timed marketing mails.\n\nUsage: kadenz COMMAND [ARGS]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'kadenz help COMMAND' for a command's flags and an example.")
}

func commandUsage(name string) func() {
	return func() {
		for _, c := range commands {
			if c.name == name {
				fmt.Fprintf(os.Stderr, "Usage: kadenz %s %s\n\n%s.\n\nExample:\n  %s\n", c.name, c.args, c.summary, c.example)
			}
		}
	}
}

func runHelp(args []string) int {
	if len(args) == 0 {
		usage()
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			commandUsage(c.name)()
			return 0
		}
	}
	fmt.Fprintf(os.Stderr, "kadenz: unknown command %q\n", args[0])
	return 2
}

// version is set by the linker (-ldflags "-X main.version=...") for
// releases; otherwise the module's build info is used.
var version = ""

func runVersion([]string) int {
	v := version
	if v == "" {
		v = "devel"
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" {
					v += " " + s.Value
				}
			}
		}
	}
	fmt.Println("kadenz", v)
	return 0
}
