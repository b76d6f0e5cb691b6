package server

// health.go: /healthz, /readyz, /metrics and /v1/status.

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/sombradb/sombra/cluster"
	"github.com/sombradb/sombra/engine"
)

// healthz: the process serves requests. Load balancers restart on it, so
// it says nothing about the database (that is readyz).
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz: the database is open, and a replica is within --max-lag of the
// primary; a diverged instance is never ready.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	st := s.status()
	code := http.StatusOK
	if !st.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, st)
}

func (s *Server) getStatus(w http.ResponseWriter, _ *http.Request, _ string) {
	st := s.status()
	writeLSN(w, http.StatusOK, st.AppliedLSN, st)
}

// metrics serves the engine's database-wide Prometheus export (rates
// since the previous scrape) followed by the replication gauges.
func (s *Server) metrics(w http.ResponseWriter, _ *http.Request, _ string) {
	s.metricsMu.Lock()
	cur, err := s.db.DatabaseMetrics()
	if err != nil {
		s.metricsMu.Unlock()
		s.fail(w, fmt.Errorf("metrics: %w", err))
		return
	}
	report := engine.NewDatabaseReport(s.metricsPrev, cur)
	s.metricsPrev = cur
	s.metricsMu.Unlock()
	var b strings.Builder
	b.WriteString(report.ToPrometheusFormat())
	st := s.status()
	ready := 0
	if st.Ready {
		ready = 1
	}
	fmt.Fprintf(&b, "# HELP sombra_replication_role The instance's role (1 for the current one).\n# TYPE sombra_replication_role gauge\n")
	for _, role := range []string{cluster.RolePrimary, cluster.RoleReplica, cluster.RoleStandalone, cluster.RoleDiverged} {
		v := 0
		if st.Role == role {
			v = 1
		}
		fmt.Fprintf(&b, "sombra_replication_role{role=%q} %d\n", role, v)
	}
	gauge := func(name, help string, v any) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s %v\n", name, help, name, name, v)
	}
	gauge("sombra_replication_applied_lsn", "LSN applied (replica) or committed and published (primary).", st.AppliedLSN)
	gauge("sombra_replication_lag_seconds", "Commit-to-apply delay of the last applied transaction (replica).", st.LagSeconds)
	gauge("sombra_replication_pending", "Messages not yet applied (replica) or commits not yet published (primary).", st.Pending)
	gauge("sombra_ready", "1 when /readyz succeeds.", ready)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}
