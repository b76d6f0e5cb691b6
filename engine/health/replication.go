package health

import (
	"fmt"
	"time"

	"github.com/sombradb/sombra/engine/replication"
)

// CheckReplication is the check of a replicated database: present only
// while a replication node runs on the file (it writes
// NAME.db-replication) or was killed leaving that file behind.
const CheckReplication = "replication"

// DefaultReplicationLag is Options.ReplicationLag's default.
const DefaultReplicationLag = 10 * time.Second

// replicationCheck judges the node's status file: a replica lagging more
// than opts.ReplicationLag or cut off from NATS is degraded, a diverged
// node or one that stopped applying is unhealthy, and a file nobody
// rewrites any more (its process was killed) is degraded.
func replicationCheck(path string, opts Options) (Check, bool) {
	st, err := replication.ReadStatusFile(path)
	if err != nil {
		return Check{Name: CheckReplication, Status: Degraded, Message: err.Error()}, true
	}
	if st == nil {
		return Check{}, false
	}
	now := opts.Now()
	lag := st.Lag.Seconds()
	c := Check{Name: CheckReplication, Status: Healthy, Value: num(lag), Threshold: num(opts.ReplicationLag.Seconds()), Unit: "seconds"}
	switch {
	case st.Stale(now):
		c.Status = Degraded
		c.Message = fmt.Sprintf("the replication status was last written %s ago by PID %d, which no longer updates it (killed?)",
			now.Sub(st.UpdatedAt).Round(time.Second), st.PID)
	case st.Role == "diverged" || st.Err != "":
		c.Status = Unhealthy
		c.Message = fmt.Sprintf("%s %s: %s", st.Role, st.Node, st.Err)
	case st.Disconnected:
		c.Status = Degraded
		c.Message = fmt.Sprintf("%s %s is not connected to NATS: it replicates nothing (last applied LSN %d)", st.Role, st.Node, st.AppliedLSN)
	case st.Role == "primary":
		c.Message = fmt.Sprintf("primary %s (%s mode), LSN %d, %d commits unpublished", st.Node, st.Mode, st.AppliedLSN, st.Pending)
	default:
		c.Message = fmt.Sprintf("replica %s of %s, applied LSN %d, lag %.3fs", st.Node, st.Primary(), st.AppliedLSN, lag)
		if st.Lag > opts.ReplicationLag {
			c.Status = Degraded
			c.Message += fmt.Sprintf(" (above %s)", opts.ReplicationLag)
		}
	}
	return c, true
}
