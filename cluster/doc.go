// Package cluster is the client side of Sombra beyond one machine: Client
// speaks to one sombra-server instance (the engine's graph operations over
// HTTP/JSON), and LoadBalancer — the operations guide's
// cluster::LoadBalancer — spreads reads over the replicas of a replicated
// set and sends writes to its primary, finding it again after a failover.
//
//	lb, err := cluster.NewLoadBalancer([]string{"db1:8080", "db2:8080", "db3:8080"})
//	var lsn uint64
//	err = lb.Write(ctx, func(w *cluster.Client) (err error) {
//		_, lsn, err = w.CreateNode(ctx, []string{"person"}, engine.Properties{"name": engine.StringValue("ann")})
//		return err
//	})
//	r, err := lb.GetReadConnection(ctx, cluster.MinLSN(lsn)) // read your write on a replica
//	ids, err := r.NodesByLabel(ctx, "person")
//	health, err := lb.HealthCheckAll(ctx)
//
// Errors from a server are *Error values that match the engine's
// sentinels (ErrNotPrimary is engine.ErrNotPrimary, ErrNotFound
// engine.ErrNotFound, ...); PrimaryOf extracts the primary's address from
// a refused write. The wire documents (wire.go) are shared with the
// server, internal/commands/server.
package cluster
