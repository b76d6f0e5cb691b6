package server

// replication.go: the --replicate flags as an engine/replication config,
// and the instance's replication state as /v1/status reports it.

import (
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/sombradb/sombra/cluster"
	"github.com/sombradb/sombra/engine/replication"
	"github.com/sombradb/sombra/internal/cli"
)

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// replicationConfig maps the flags. The node name defaults to the
// advertised address, which is stable across restarts of the same
// instance (a restarted primary finding the lease under its own name
// takes it back) and unique in a set by construction.
func replicationConfig(opts *Options, advertise string, log *slog.Logger) (replication.Config, error) {
	mode, err := replication.ParseMode(opts.Mode)
	if err != nil {
		return replication.Config{}, cli.Usagef("--mode: %w", err)
	}
	name := opts.Name
	if name == "" {
		name = unsafeName.ReplaceAllString(strings.TrimSuffix(filepath.Base(opts.Globals.DB), filepath.Ext(opts.Globals.DB)), "_")
	}
	node := opts.Node
	if node == "" {
		node = strings.Trim(unsafeName.ReplaceAllString(advertise, "_"), "_")
	}
	role := replication.Replica
	if opts.Role == "primary" {
		role = replication.Primary
	}
	return replication.Config{URL: opts.Replicate, Name: name, Node: node, Address: advertise, Role: role, Mode: mode,
		Failover: opts.Failover, LeaseTTL: opts.LeaseTTL, SyncTimeout: opts.SyncTimeout,
		SnapshotInterval: opts.SnapshotInterval, StartTimeout: opts.StartTimeout, Logger: log}, nil
}

// statusView is cluster.Status with the lag kept as a duration.
type statusView = cluster.Status

// status reports the instance's role and position.
func (s *Server) status() statusView {
	if s.node == nil {
		lsn, err := s.db.LastLSN()
		st := statusView{Role: cluster.RoleStandalone, AppliedLSN: lsn, Ready: err == nil}
		if err != nil {
			st.Error = err.Error()
		}
		return st
	}
	ns := s.node.Status()
	st := statusView{Role: ns.Role, Node: ns.Node, Mode: ns.Mode, PrimaryNode: ns.PrimaryNode, PrimaryAddr: ns.PrimaryAddr,
		Advertise: s.addr, AppliedLSN: ns.AppliedLSN, LagSeconds: ns.Lag.Seconds(), Pending: ns.Pending, Error: ns.Err}
	switch ns.Role {
	case cluster.RolePrimary:
		st.Ready = true
	case cluster.RoleReplica: // ready while it applies and keeps up
		st.Ready = ns.Err == "" && ns.Lag <= s.maxLag && !ns.Disconnected
		if ns.Disconnected && st.Error == "" {
			st.Error = "not connected to NATS: the lag is not known"
		}
	}
	return st
}
