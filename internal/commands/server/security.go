package server

// security.go: who may reach the server and as whom it acts — the listen
// address check, bearer tokens and TLS.

import (
	"bufio"
	"crypto/subtle"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/sombradb/sombra/cluster"
	"github.com/sombradb/sombra/internal/cli"
)

// listenAddr fills in a missing host (loopback) and, unless the server
// authenticates (tokens) or encrypts (TLS), refuses an address other
// machines can reach: an open database on the network must be asked for
// twice, once by the address and once by the credentials.
func listenAddr(addr string, secured bool) (string, error) {
	host, hostport, err := cli.ListenAddr(addr)
	if err != nil {
		return "", err
	}
	if !secured && !loopback(host) {
		return "", cli.Usagef("--listen %s: not a loopback address, and the server has neither --token-file nor --tls-cert: "+
			"anyone who can reach it could read and write the database; give a token file (and TLS), or listen on 127.0.0.1", addr)
	}
	return hostport, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loadTokens reads a token file: "TOKEN USER" a line, # comments. A token
// file that is readable by others is refused, as ssh refuses a private key.
func loadTokens(path string) (map[string]string, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, cli.Usagef("token file %s: mode %v lets other users read the tokens; chmod 600 it", path, st.Mode().Perm())
	}
	tokens := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, cli.Usagef("token file %s line %d: want \"TOKEN USER\"", path, n)
		}
		if len(fields[0]) < 16 {
			return nil, cli.Usagef("token file %s line %d: token shorter than 16 characters", path, n)
		}
		if _, dup := tokens[fields[0]]; dup {
			return nil, cli.Usagef("token file %s line %d: token given twice", path, n)
		}
		tokens[fields[0]] = fields[1]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	if len(tokens) == 0 {
		return nil, cli.Usagef("token file %s holds no token", path)
	}
	return tokens, nil
}

// tlsConfig loads the certificate, so a bad one fails at start, not at
// the first connection.
func tlsConfig(cert, key string) (*tls.Config, error) {
	if cert == "" {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s / key %s: %w", cert, key, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// authenticate returns the user a request acts as: the token's user, or
// with no token file the server's --user. ok is false when it answered
// 401 itself.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (user string, ok bool) {
	if s.tokens == nil {
		return s.user, true
	}
	given, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if found {
		// Compare with every token in constant time, so timing does not
		// tell how much of a guess was right.
		for tok, u := range s.tokens {
			if subtle.ConstantTimeCompare([]byte(tok), []byte(given)) == 1 {
				user = u
			}
		}
	}
	if user == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sombra"`)
		writeJSON(w, http.StatusUnauthorized, cluster.ErrorBody{Error: "missing or unknown bearer token", Kind: cluster.KindUnauthorized})
		return "", false
	}
	return user, true
}
