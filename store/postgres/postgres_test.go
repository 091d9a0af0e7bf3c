package postgres_test

import (
	"context"
	"os"
	"sync"
	"testing"

	"kadenz/store"
	"kadenz/store/postgres"
	"kadenz/store/postgres/pgtest"
	"kadenz/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// freshURL is a new, empty schema (see pgtest.URL).
func freshURL(t testing.TB) string { return pgtest.URL(t) }

// open opens a store on url for a test, closed after it.
func open(t testing.TB, url string, opts postgres.Options) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The PostgreSQL store passes the conformance suite every backend must
// pass. The suite names a store by a directory; each directory gets a
// database of its own, and opening the directory again opens the same
// database (as reopening a bbolt file does).
func TestConformancePostgres(t *testing.T) {
	var mu sync.Mutex
	dbs := map[string]string{}
	storetest.Run(t, storetest.Backend{Open: func(t *testing.T, dir string) store.Store {
		mu.Lock()
		url, ok := dbs[dir]
		if !ok {
			url = freshURL(t)
			dbs[dir] = url
		}
		mu.Unlock()
		s, err := postgres.Open(context.Background(), url, postgres.Options{Node: "test-node"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}})
}
