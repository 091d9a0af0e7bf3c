package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kadenz/governor"
	"kadenz/governor/relaytest"
)

func TestSuppressCommand(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := l.Addr().String()
	l.Close()
	cfg := relaytest.Config(t, "", true, "tok")
	cfg.Admin.Listen = adminAddr
	r := relaytest.Start(t, governor.Options{Config: cfg})

	flags := []string{"--admin", adminAddr, "--token", "tok"}
	run := func(args ...string) int { return runSuppress(append(append([]string(nil), flags...), args...)) }
	if code := run("--reason", "asked by phone", "add", "ann@example.test"); code != 0 {
		t.Fatalf("add: exit %d", code)
	}
	if s, ok, _ := r.DB().SuppressionOf("ann@example.test"); !ok || s.Reason != "asked by phone" || s.Source != "admin" {
		t.Errorf("after add: %+v %v", s, ok)
	}
	csv := filepath.Join(t.TempDir(), "list.csv")
	os.WriteFile(csv, []byte("bob@example.test,old ESP bounce\n"), 0o600)
	if code := run("import", csv); code != 0 {
		t.Errorf("import: exit %d", code)
	}
	if _, ok, _ := r.DB().SuppressionOf("bob@example.test"); !ok {
		t.Error("import did not list bob")
	}
	if code := run("ls"); code != 0 {
		t.Errorf("ls: exit %d", code)
	}
	admin := adminFlags{addr: &adminAddr, token: new(string)}
	*admin.token = "tok"
	table, err := suppressAction(admin, []string{"ls"}, "", false)
	if err != nil || !strings.Contains(string(table), "bob@example.test  old ESP bounce") || !strings.HasPrefix(string(table), "ADDRESS") {
		t.Errorf("ls prints %q, %v", table, err)
	}
	if out, err := suppressAction(admin, []string{"add", "cy@example.test"}, "", false); err != nil || string(out) != "suppressed cy@example.test\n" {
		t.Errorf("add prints %q, %v", out, err)
	}
	if out, err := suppressAction(admin, []string{"export"}, "", true); err != nil || !strings.Contains(string(out), "cy@example.test") {
		t.Errorf("export prints %q, %v", out, err)
	}
	if code := run("export"); code != 0 {
		t.Errorf("export: exit %d", code)
	}
	if code := run("rm", "ann@example.test"); code != 0 {
		t.Errorf("rm: exit %d", code)
	}
	if _, ok, _ := r.DB().SuppressionOf("ann@example.test"); ok {
		t.Error("rm left ann listed")
	}
	if code := run("rm", "ann@example.test"); code != 1 {
		t.Errorf("rm of an unlisted address: exit %d, want 1", code)
	}
	if code := run("add", "not-an-address"); code != 1 {
		t.Errorf("add of a bad address: exit %d, want 1", code)
	}
	if code := run("frobnicate"); code != 2 {
		t.Errorf("unknown subcommand: exit %d, want 2", code)
	}
	if code := runSuppress([]string{"--admin", adminAddr, "--token", "wrong", "ls"}); code != 1 {
		t.Errorf("wrong token: exit %d, want 1", code)
	}
}
