package cli

import (
	"net"
	"strings"
)

// ListenAddr reads a --listen address: a bare port or ":port" listens on
// 127.0.0.1 only, because a server reachable from the network must be
// asked for ("0.0.0.0:9090"). A malformed address is a usage error.
func ListenAddr(addr string) (host, hostport string, err error) {
	if !strings.Contains(addr, ":") {
		addr = ":" + addr // a bare port
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", Usagef("--listen %q: %w", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, net.JoinHostPort(host, port), nil
}
