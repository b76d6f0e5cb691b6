package replication

import (
	"errors"
	"testing"

	"github.com/sombradb/sombra/engine"
)

// A replica started from the primary's snapshot follows its commits: at
// the same LSN both hold the same graph, and the replica refuses writes
// naming the primary.
func TestReplicaConverges(t *testing.T) {
	s := startNATS(t, t.TempDir(), 0)
	p := openMember(t, dbPath(t, "p.db"), testConfig(s.ClientURL(), "conv", "p", Primary, Sync))
	waitRole(t, p, rolePrimary, 5e9)
	writeNodes(t, p.db, 0, 20)
	r := openMember(t, dbPath(t, "r.db"), testConfig(s.ClientURL(), "conv", "r", Replica, Sync))
	lsn := writeNodes(t, p.db, 20, 30)
	waitApplied(t, r, lsn)
	sameGraph(t, p, r, lsn)

	err := r.db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("x", nil); return err })
	if !errors.Is(err, engine.ErrNotPrimary) {
		t.Fatalf("write on a replica: %v, want ErrNotPrimary", err)
	}
	t.Log(err)
	if st := r.node.Status(); st.Role != roleReplica || st.AppliedLSN != lsn || st.PrimaryNode != "p" {
		t.Fatalf("replica status %+v", st)
	}
}
