package pgtest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// The cluster answers on loopback, and each URL is a schema of its own.
func TestClusterGivesEachTestASchema(t *testing.T) {
	a, b := URL(t), URL(t)
	if a == b {
		t.Fatalf("two tests got one database: %s", a)
	}
	if !strings.Contains(a, "@127.0.0.1:") {
		t.Errorf("URL %s is not on loopback", a)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var addr string
	if err := conn.QueryRow(ctx, "SHOW listen_addresses").Scan(&addr); err != nil || addr != "127.0.0.1" {
		t.Errorf("listen_addresses %q %v, want 127.0.0.1 only", addr, err)
	}
}

// helperRequire is run by TestMissingPostgres in a child process.
func TestHelperRequire(t *testing.T) {
	if os.Getenv("PGTEST_HELPER") != "1" {
		t.Skip("run by TestMissingPostgres")
	}
	Require(t)
	t.Log("HELPER-RAN")
}

// Without PostgreSQL a test skips on a laptop and fails under CI=true.
func TestMissingPostgres(t *testing.T) {
	run := func(ci string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRequire$", "-test.v")
		cmd.Env = append(os.Environ(), "PGTEST_HELPER=1", "KADENZ_PG_BIN=/nonexistent", "CI="+ci)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("")
	if err != nil || !strings.Contains(out, "--- SKIP: TestHelperRequire") {
		t.Errorf("without CI: %v\n%s", err, out)
	}
	out, err = run("true")
	if err == nil || !strings.Contains(out, "--- FAIL: TestHelperRequire") || strings.Contains(out, "HELPER-RAN") {
		t.Errorf("under CI=true: %v\n%s", err, out)
	}
}
