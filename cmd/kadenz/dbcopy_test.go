package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The copy itself is tested where it lives (governor/datacopy_test.go);
// here, what the command refuses before it reaches either database.
func TestDBCopyRefusesBadArguments(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nothing-here")
	present := filepath.Join(dir, "kadenz.db")
	if err := os.WriteFile(present, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"copy", "--to", "postgres:postgres://k@127.0.0.1/k"}, "Usage"},
		{[]string{"copy", "--from", "bbolt:" + missing}, "Usage"},
		{[]string{"copy", "--from", "sqlite:x", "--to", "postgres:postgres://k@127.0.0.1/k"}, "Usage"},
		{[]string{"copy", "--from", "bbolt:" + missing, "--to", "postgres:postgres://k@127.0.0.1/k"}, "no such file"},
		{[]string{"copy", "--from", "bbolt:" + dir, "--to", "postgres:postgres://k@127.0.0.1/k",
			"--password-file", "f", "--password-env", "V"}, "not both"},
		{[]string{"copy", "--from", "bbolt:" + present, "--to", "postgres:postgres://k@127.0.0.1/k",
			"--password-env", "KADENZ_TEST_UNSET_VARIABLE"}, "not set"},
	} {
		var out, errb bytes.Buffer
		if code := dbMain(tc.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
}
