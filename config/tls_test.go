package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClientTLS(t *testing.T) {
	tc, err := ClientTLS("", false)
	if err != nil || tc.RootCAs != nil || tc.InsecureSkipVerify || tc.MinVersion == 0 {
		t.Errorf("no CA file: %+v, %v; want system roots, verification, a minimum version", tc, err)
	}
	bad := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	if _, err := ClientTLS(bad, false); err == nil || !strings.Contains(err.Error(), "no PEM certificates") {
		t.Errorf("a file without PEM: %v", err)
	}
	if _, err := ClientTLS(filepath.Join(t.TempDir(), "missing.pem"), false); err == nil {
		t.Error("a missing CA file gave no error")
	}
}
