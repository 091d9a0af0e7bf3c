// Package pgtest starts a private PostgreSQL cluster for tests: initdb in a
// temporary directory, pg_ctl start on a free port of 127.0.0.1 (and a unix
// socket in that directory, nowhere else), and, after the tests, pg_ctl
// stop and the directory removed.
//
// It uses the PostgreSQL programs installed on the machine (Debian's
// postgresql package puts them in /usr/lib/postgresql/VERSION/bin; the
// newest is taken, or $KADENZ_PG_BIN). initdb refuses to run as root: run
// as root, the cluster belongs to the postgres system user and its
// programs run under runuser. No system cluster is touched.
//
// Without PostgreSQL a test skips, except under CI=true, where it fails:
// CI must not report a backend as tested when it never ran.
//
// One cluster serves a whole test binary; each test gets a schema of its
// own (URL), or a database (CreateDatabase) when it changes settings of the
// database itself. The test binary's TestMain calls Main so that the cluster
// is stopped when the tests end:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// The cluster runs with fsync off: it is thrown away after the tests, and
// on a shared machine every fsync would slow them down. Commits still go
// through the WAL and synchronous_commit stays on, so the code under test
// takes the same paths as in production.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a running private PostgreSQL.
type Cluster struct {
	Dir  string // data directory, unix socket and log
	Port int
	bin  string
	// asUser runs the PostgreSQL programs as the postgres system user
	// (when the tests run as root).
	asUser string
	dbs    atomic.Int64
}

var (
	shared     *Cluster
	sharedErr  error
	sharedOnce sync.Once
)

// Main runs the tests and stops the shared cluster, if one was started.
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	return code
}

// Require returns the shared cluster, starting it on first use. Without
// PostgreSQL it skips the test, or fails it under CI=true.
func Require(t testing.TB) *Cluster {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = Start() })
	if sharedErr != nil {
		if errors.Is(sharedErr, ErrNoPostgres) && os.Getenv("CI") != "true" {
			t.Skipf("pgtest: %v (install Debian's postgresql package; under CI=true this fails)", sharedErr)
		}
		t.Fatalf("pgtest: %v", sharedErr)
	}
	return shared
}

// URL returns the URL of a new, empty schema in the shared cluster: a
// database of its own to the code under test (its search_path), at a
// fraction of the cost of CREATE DATABASE.
func URL(t testing.TB) string {
	t.Helper()
	c := Require(t)
	url, err := c.CreateSchema()
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// PasswordRole is a role that must authenticate with a password (scram);
// CreatePasswordRole creates it.
const PasswordRole = "kadenz_password"

// CreatePasswordRole creates PasswordRole with password, allowed to use
// every database (once per cluster; later calls change the password).
func (c *Cluster) CreatePasswordRole(password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.BaseURL())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, PasswordRole).Scan(&exists); err != nil {
		return err
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	_, err = conn.Exec(ctx, fmt.Sprintf("%s ROLE %s LOGIN SUPERUSER PASSWORD '%s'", verb, PasswordRole, strings.ReplaceAll(password, "'", "''")))
	return err
}

// ErrNoPostgres says the PostgreSQL programs are not installed.
var ErrNoPostgres = errors.New("PostgreSQL (initdb, pg_ctl) not found")

// binDir finds the directory of initdb and pg_ctl.
func binDir() (string, error) {
	if d := os.Getenv("KADENZ_PG_BIN"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("%w in $KADENZ_PG_BIN (%s)", ErrNoPostgres, d)
		}
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) }) // newest first
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNoPostgres
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Options change how Start sets a cluster up.
type Options struct {
	// Fsync keeps PostgreSQL's fsync on, as in production: for
	// benchmarks that compare durable commits.
	Fsync bool
}

// Start initialises and starts a cluster for tests (fsync off).
func Start() (*Cluster, error) { return StartWith(Options{}) }

// StartWith initialises and starts a cluster.
func StartWith(o Options) (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	reapOrphans(bin)
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("running as root, and there is no postgres user to run initdb as: %w", err)
		}
		c.asUser = "postgres"
	}
	if c.Dir, err = os.MkdirTemp("", "kadenz-pg-"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	if c.asUser != "" {
		if out, err := exec.Command("chown", "-R", c.asUser, c.Dir).CombinedOutput(); err != nil {
			os.RemoveAll(c.Dir)
			return nil, fmt.Errorf("chown %s: %v: %s", c.Dir, err, out)
		}
	}
	data := filepath.Join(c.Dir, "data")
	if out, err := c.run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		os.RemoveAll(c.Dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	// One role must give a password, so that tests of password handling
	// can fail; everyone else is trusted (loopback only).
	hba := filepath.Join(data, "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		os.RemoveAll(c.Dir)
		return nil, err
	}
	line := "host all " + PasswordRole + " 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(hba, append([]byte(line), old...), 0o600); err != nil {
		os.RemoveAll(c.Dir)
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if c.Port, err = freePort(); err != nil {
			os.RemoveAll(c.Dir)
			return nil, err
		}
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=64MB", c.Port, c.Dir)
		if !o.Fsync {
			opts += " -c fsync=off -c full_page_writes=off"
		}
		out, err := c.run("pg_ctl", "start", "-w", "-t", "60", "-D", data, "-l", filepath.Join(c.Dir, "log"), "-o", opts)
		if err == nil {
			break
		}
		if attempt >= 2 { // the port may have been taken between freePort and start
			log, _ := os.ReadFile(filepath.Join(c.Dir, "log"))
			os.RemoveAll(c.Dir)
			return nil, fmt.Errorf("pg_ctl start: %v: %s\n%s", err, out, log)
		}
	}
	return c, nil
}

func (c *Cluster) run(prog string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, prog)
	var cmd *exec.Cmd
	if c.asUser != "" {
		cmd = exec.Command("runuser", append([]string{"-u", c.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = c.Dir
	return cmd.CombinedOutput()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Stop stops the cluster and removes its directory.
func (c *Cluster) Stop() {
	c.run("pg_ctl", "stop", "-D", filepath.Join(c.Dir, "data"), "-m", "immediate", "-w")
	os.RemoveAll(c.Dir)
}

// BaseURL is the URL of the cluster's postgres database.
func (c *Cluster) BaseURL() string { return c.DatabaseURL("postgres") }

// DatabaseURL is the URL of one database of the cluster.
func (c *Cluster) DatabaseURL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, name)
}

// CreateDatabase creates a new, empty database and returns its URL.
func (c *Cluster) CreateDatabase() (string, error) { return c.CreateDatabaseFrom("") }

// CreateDatabaseFrom creates a new database as a copy of the database
// template (one nobody is connected to; "" for an empty one) and returns
// its URL. A test suite that sets up the same schema for every test does
// it once in a template and copies that.
func (c *Cluster) CreateDatabaseFrom(template string) (string, error) {
	name := fmt.Sprintf("kadenz_%d_%d", os.Getpid(), c.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.BaseURL())
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(ctx)
	create := "CREATE DATABASE " + name
	if template != "" {
		create += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if _, err := conn.Exec(ctx, create); err != nil {
		return "", fmt.Errorf("pgtest: create database: %w", err)
	}
	return c.DatabaseURL(name), nil
}

// CreateSchema creates a new, empty schema in the cluster's postgres
// database and returns a URL whose sessions use it (search_path).
func (c *Cluster) CreateSchema() (string, error) {
	name := fmt.Sprintf("kadenz_%d", c.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.BaseURL())
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		return "", fmt.Errorf("pgtest: create schema: %w", err)
	}
	return c.BaseURL() + "&search_path=" + name, nil
}

// reapOrphans stops clusters left behind by test processes that died
// before they could stop them (a killed `go test`), and removes their
// directories: their owner.pid names a process that is gone.
func reapOrphans(bin string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "kadenz-pg-*"))
	for _, d := range dirs {
		raw, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil || processAlive(pid) {
			continue
		}
		c := &Cluster{Dir: d, bin: bin}
		if os.Geteuid() == 0 {
			c.asUser = "postgres"
		}
		if _, err := os.Stat(filepath.Join(d, "data", "postmaster.pid")); err == nil {
			c.run("pg_ctl", "stop", "-D", filepath.Join(d, "data"), "-m", "immediate", "-w")
		}
		os.RemoveAll(d)
	}
}

func processAlive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}
