package config

import "testing"

func TestStorePasswordSources(t *testing.T) {
	t.Setenv("KADENZ_TEST_DB_PASSWORD", "from-env")
	for _, tc := range []struct {
		p       StorePostgres
		want    string
		wantErr bool
	}{
		{StorePostgres{}, "", false},
		{StorePostgres{PasswordFile: "testdata/password.txt"}, "s3cret", false},
		{StorePostgres{PasswordEnv: "KADENZ_TEST_DB_PASSWORD"}, "from-env", false},
		{StorePostgres{PasswordEnv: "KADENZ_TEST_NOT_SET"}, "", true},
		{StorePostgres{PasswordFile: "testdata/empty-password.txt"}, "", true},
	} {
		got, err := tc.p.ResolvePassword()
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("%+v: %q, %v; want %q (error: %v)", tc.p, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestStoreFromFile(t *testing.T) {
	t.Setenv("KADENZ_TEST_DB_PASSWORD", "pw")
	c := Default()
	c.Store = Store{Backend: BackendPostgres, Postgres: StorePostgres{URL: "postgresql:///kadenz?host=/run/postgresql", PasswordEnv: "KADENZ_TEST_DB_PASSWORD"}}
	if errs := c.Validate(); errs != nil {
		t.Errorf("a unix-socket URL with the password in the environment: %v", errs)
	}
	c.Store.Postgres.URL = "postgres://kadenz@db.example.com/kadenz?password=x"
	if errs := c.Validate(); len(errs) != 1 {
		t.Errorf("a password as a URL parameter: %v, want one error", errs)
	}
}
