package config

import (
	"net"
	"net/netip"
)

// IsLoopback reports whether hostport names a loopback address
// (127.0.0.0/8, ::1 or "localhost"). Security rules hang on it: the admin
// listener without a token, and upstream credentials without TLS, are only
// allowed on loopback.
func IsLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
