package config

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// Store backends.
const (
	BackendBbolt    = "bbolt"    // one node, a file in data_dir (the default)
	BackendPostgres = "postgres" // several nodes sharing PostgreSQL-compatible SQL
)

var storeBackends = []string{BackendBbolt, BackendPostgres}

// Store says where Kadenz keeps its state. Changing it needs a restart
// (and `kadenz db copy` to bring the data along).
type Store struct {
	// Backend is bbolt (a file in data_dir, one node) or postgres (a
	// database several nodes share: PostgreSQL, CockroachDB, YugabyteDB).
	Backend  string        `yaml:"backend"`
	Postgres StorePostgres `yaml:"postgres"`
}

// StorePostgres is the database of the postgres backend.
type StorePostgres struct {
	// URL is a postgres:// (or postgresql://) URL without a password:
	// host, port, user, database and parameters such as sslmode.
	URL string `yaml:"url"`
	// The password is read from PasswordFile (trimmed) or from the
	// environment variable PasswordEnv, never from this file: read it with
	// ResolvePassword. Neither is needed where the server does not ask
	// for one (a client certificate, a local trust rule).
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
	// Node names this process in the database's claims and leases; the
	// host name when empty. Every node of a cluster needs its own.
	Node string `yaml:"node"`
	// Lease is how long a node holds a singleton's lease (the decision
	// engine, each feedback mailbox, each chore) between renewals: when
	// its holder dies, another node takes the work over within about this
	// long. The holder renews it every third of it. 15 s when unset.
	Lease time.Duration `yaml:"lease"`
}

// DefaultLease is store.postgres.lease when unset.
const DefaultLease = 15 * time.Second

// LeaseOrDefault is Lease, or DefaultLease when unset.
func (p *StorePostgres) LeaseOrDefault() time.Duration {
	if p.Lease > 0 {
		return p.Lease
	}
	return DefaultLease
}

// ResolvePassword returns the database password: the contents of
// PasswordFile, or the value of the environment variable PasswordEnv, or
// "" when neither is set.
func (p *StorePostgres) ResolvePassword() (string, error) {
	switch {
	case p.PasswordFile != "":
		pw, err := readPasswordFile(p.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("database password: %w", err)
		}
		return pw, nil
	case p.PasswordEnv != "":
		pw := os.Getenv(p.PasswordEnv)
		if strings.TrimSpace(pw) == "" {
			return "", fmt.Errorf("database password: environment variable %s is not set or empty", p.PasswordEnv)
		}
		return pw, nil
	}
	return "", nil
}

func (v *validator) store(s *Store) {
	v.oneOf("store.backend", s.Backend, storeBackends)
	p := &s.Postgres
	if s.Backend != BackendPostgres {
		if *p != (StorePostgres{}) {
			v.errorNear("store.postgres", []string{"store.backend"}, "is set, but store.backend is %s", s.Backend)
		}
		return
	}
	switch {
	case strings.TrimSpace(p.URL) == "":
		v.errorNear("store.postgres.url", []string{"store.postgres", "store.backend"}, "must be set for the postgres backend")
	default:
		u, err := url.Parse(p.URL)
		switch {
		case err != nil:
			v.errorf("store.postgres.url", "not a URL: %v", urlErr(err))
		case u.Scheme != "postgres" && u.Scheme != "postgresql":
			v.errorf("store.postgres.url", "must start with postgres:// or postgresql://")
		case u.Host == "" && u.Query().Get("host") == "":
			v.errorf("store.postgres.url", "names no host")
		default:
			if _, has := u.User.Password(); has || u.Query().Has("password") {
				v.errorf("store.postgres.url", "holds a password: put it in password_file or password_env instead")
			}
		}
	}
	if p.Lease < 0 || p.Lease > 0 && p.Lease < 300*time.Millisecond {
		v.errorf("store.postgres.lease", "must be at least 300ms (or unset for %v)", DefaultLease)
	}
	if p.PasswordFile != "" && p.PasswordEnv != "" {
		v.errorNear("store.postgres.password_env", []string{"store.postgres.password_file"}, "set either password_file or password_env, not both")
	} else if _, err := p.ResolvePassword(); err != nil {
		path := "store.postgres.password_file"
		if p.PasswordEnv != "" {
			path = "store.postgres.password_env"
		}
		v.errorf(path, "%v", strings.TrimPrefix(err.Error(), "database password: "))
	}
}

// urlErr drops url.Parse's repetition of the whole URL, which may hold a
// password.
func urlErr(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
