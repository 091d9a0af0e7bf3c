package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// ClientTLS is the TLS configuration for a connection Kadenz makes (to the
// smarthost, to a feedback mailbox): TLS 1.2 or later, the system's roots
// plus the certificates in caFile if one is given, and no verification
// only where insecure is set. Validate has already checked that caFile
// holds PEM; this reads it again at start.
func ClientTLS(caFile string, insecure bool) (*tls.Config, error) {
	tc := &tls.Config{InsecureSkipVerify: insecure, MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return tc, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificates", caFile)
	}
	tc.RootCAs = pool
	return tc, nil
}
