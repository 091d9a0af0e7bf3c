package store_test

import (
	"path/filepath"
	"testing"

	"kadenz/store"
	"kadenz/store/storetest"
)

// The bbolt store passes the conformance suite every backend must pass.
func TestConformanceBbolt(t *testing.T) {
	storetest.Run(t, storetest.Backend{Open: func(t *testing.T, dir string) store.Store {
		db, err := store.Open(filepath.Join(dir, "kadenz.db"), store.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}})
}
