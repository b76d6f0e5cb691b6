package replication

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/handle"
	"github.com/sombradb/sombra/internal/natstest"
)

// A transaction larger than a NATS message goes out in parts and is
// applied whole; on a primary with a small cache most of its pages were
// spilled to the WAL before the commit, and are shipped all the same.
func TestLargeTransactionInParts(t *testing.T) {
	s := startNATS(t, t.TempDir(), 0)
	p, err := tryOpenMemberWith(dbPath(t, "p.db"), testConfig(s.ClientURL(), "big", "p", Primary, Sync), engine.Config{CacheSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer p.db.Close()
	r := openMember(t, dbPath(t, "r.db"), testConfig(s.ClientURL(), "big", "r", Replica, Sync))
	spilled := false
	err = p.db.Update(func(tx *engine.Tx) error {
		defer func() { spilled = handle.SpilledFrames(tx) > 0 }()
		for i := 0; i < 2500; i++ {
			b := make([]byte, 1000)
			rand.Read(b) // incompressible: the transaction is several MB
			if _, err := tx.CreateNode("blob", engine.Properties{"b": engine.BytesValue(b)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	lsn, _ := p.db.LastLSN()
	waitApplied(t, r, lsn)
	sameGraph(t, p, r, lsn)
	if !spilled {
		t.Fatal("the transaction did not spill: the test does not cover spilled pages")
	}
	if p.node.maxPart > 1<<20 {
		t.Fatalf("part size %d: the test needs a transaction above it", p.node.maxPart)
	}
}

// A replica closed (or killed: applying is one local commit per
// transaction) and reopened resumes from its LSN; one reopened after the
// stream was trimmed behind a newer snapshot restores that snapshot,
// keeps the old file aside, and catches up.
func TestReplicaRestartCatchesUp(t *testing.T) {
	s := startNATS(t, t.TempDir(), 0)
	url := s.ClientURL()
	p := openMember(t, dbPath(t, "p.db"), testConfig(url, "restart", "p", Primary, Async))
	rpath := dbPath(t, "r.db")
	r, err := tryOpenMember(rpath, testConfig(url, "restart", "r", Replica, Async))
	if err != nil {
		t.Fatal(err)
	}
	lsn := writeNodes(t, p.db, 0, 10)
	waitApplied(t, r, lsn)
	r.db.Close()

	lsn = writeNodes(t, p.db, 10, 10)
	r = openMember(t, rpath, testConfig(url, "restart", "r", Replica, Async))
	waitApplied(t, r, lsn)
	sameGraph(t, p, r, lsn)
	r.db.Close()

	writeNodes(t, p.db, 20, 10)
	info, err := p.node.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Trimmed == 0 {
		t.Fatalf("snapshot at LSN %d trimmed nothing", info.LSN)
	}
	lsn = writeNodes(t, p.db, 30, 5)
	r = openMember(t, rpath, testConfig(url, "restart", "r", Replica, Async))
	waitApplied(t, r, lsn)
	sameGraph(t, p, r, lsn)
	aside, _ := filepath.Glob(rpath + ".replaced-*")
	if len(aside) == 0 {
		t.Fatal("the far-behind replica file was not kept aside")
	}
}

func freePort(t *testing.T) int { return natstest.FreePort(t) }

// With NATS stopped the primary still serves reads; a sync write fails
// clearly (committed locally, not acknowledged), the next is refused
// before committing; once NATS is back writes resume and the replica
// converges, the unacknowledged commit included.
func TestSyncWritesFailWhileNATSDown(t *testing.T) {
	dir, port := t.TempDir(), freePort(t)
	s := startNATS(t, dir, port)
	url := s.ClientURL()
	cfg := testConfig(url, "down", "p", Primary, Sync)
	cfg.LeaseTTL = 3 * time.Second
	cfg.SyncTimeout = 500 * time.Millisecond
	p := openMember(t, dbPath(t, "p.db"), cfg)
	rcfg := testConfig(url, "down", "r", Replica, Sync)
	rcfg.LeaseTTL = cfg.LeaseTTL
	r := openMember(t, dbPath(t, "r.db"), rcfg)
	lsn := writeNodes(t, p.db, 0, 5)
	waitApplied(t, r, lsn)

	s.Shutdown()
	s.WaitForShutdown()
	if _, err := p.db.LogicalHash(); err != nil {
		t.Fatalf("read while NATS is down: %v", err)
	}
	err := p.db.Update(func(tx *engine.Tx) error {
		_, err := tx.CreateNode("item", engine.Properties{"i": engine.IntValue(5)})
		return err
	})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("sync write with NATS down: %v, want ErrUnavailable", err)
	}
	t.Log(err)
	before, _ := p.db.LastLSN()
	err = p.db.Update(func(tx *engine.Tx) error {
		_, err := tx.CreateNode("item", engine.Properties{"i": engine.IntValue(6)})
		return err
	})
	if !errors.Is(err, ErrUnavailable) && !errors.Is(err, engine.ErrNotPrimary) {
		t.Fatalf("second sync write with NATS down: %v", err)
	}
	t.Log(err)
	if after, _ := p.db.LastLSN(); after != before {
		t.Fatalf("a refused write committed: LSN %d -> %d", before, after)
	}

	startNATS(t, dir, port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err = p.db.Update(func(tx *engine.Tx) error {
			_, err := tx.CreateNode("item", engine.Properties{"i": engine.IntValue(7)})
			return err
		})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes did not resume after NATS came back: %v (%+v)", err, p.node.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	lsn, _ = p.db.LastLSN()
	waitApplied(t, r, lsn)
	sameGraph(t, p, r, lsn)
}

// A primary whose lease was taken (here: deleted behind its back, as if
// it had lapsed during a pause) is fenced: its commit's publish fails
// against the new primary's marker, it steps down, and it cannot write.
// Reopened, it finds itself diverged, restores the snapshot and follows
// the new primary.
func TestDeposedPrimaryIsFenced(t *testing.T) {
	s := startNATS(t, t.TempDir(), 0)
	url := s.ClientURL()
	apath := dbPath(t, "a.db")
	acfg := testConfig(url, "fence", "a", Primary, Sync)
	acfg.LeaseTTL = 30 * time.Second // a's own clock says its lease is good throughout
	a, err := tryOpenMember(apath, acfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { a.db.Close() }()
	bcfg := testConfig(url, "fence", "b", Replica, Sync)
	bcfg.Failover = true
	bcfg.LeaseTTL = 30 * time.Second
	b := openMember(t, dbPath(t, "b.db"), bcfg)
	lsn := writeNodes(t, a.db, 0, 5)
	waitApplied(t, b, lsn)

	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(context.Background(), acfg.leaseBucket())
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(context.Background(), leaseKey); err != nil {
		t.Fatal(err)
	}
	waitRole(t, b, rolePrimary, 5*time.Second)
	writeNodes(t, b.db, 100, 3)

	err = a.db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("item", nil); return err })
	if err == nil {
		t.Fatal("the deposed primary committed and replicated a write")
	}
	t.Log(err)
	err = a.db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("item", nil); return err })
	if !errors.Is(err, engine.ErrNotPrimary) {
		t.Fatalf("write after being fenced: %v, want ErrNotPrimary", err)
	}
	if st := a.node.Status(); st.Role == rolePrimary {
		t.Fatalf("deposed primary still primary: %+v", st)
	}
	a.db.Close()
	// Without the marker (as after a crash right after the local commit)
	// the state digest at a's LSN still tells a's file diverged.
	if err := os.Remove(apath + divergedSuffix); err != nil {
		t.Fatalf("no divergence marker: %v", err)
	}
	acfg.Role = Primary // restarted as it was: b holds the lease, so a follows
	a = openMember(t, apath, acfg)
	if m, _ := filepath.Glob(apath + ".replaced-*[0-9]"); len(m) != 1 {
		t.Fatalf("diverged file not restored from the snapshot (kept aside: %v)", m)
	}
	if err := a.db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("item", nil); return err }); !errors.Is(err, engine.ErrNotPrimary) {
		t.Fatalf("restarted deposed primary wrote: %v", err)
	}
	blsn := writeNodes(t, b.db, 200, 2)
	waitApplied(t, a, blsn)
	sameGraph(t, a, b, blsn)
}

// A replica whose file is another database than the stream's is refused
// before anything is applied or moved.
func TestForeignStreamRefused(t *testing.T) {
	s := startNATS(t, t.TempDir(), 0)
	url := s.ClientURL()
	p := openMember(t, dbPath(t, "p.db"), testConfig(url, "mine", "p", Primary, Sync))
	writeNodes(t, p.db, 0, 3)

	other := dbPath(t, "other.db")
	db, err := engine.Open(other)
	if err != nil {
		t.Fatal(err)
	}
	writeNodes(t, db, 0, 2)
	wantLSN, _ := db.LastLSN()
	wantHash, _ := db.LogicalHash()
	db.Close()

	_, err = tryOpenMember(other, testConfig(url, "mine", "o", Replica, Sync))
	if !errors.Is(err, ErrForeignStream) {
		t.Fatalf("open a foreign replica: %v, want ErrForeignStream", err)
	}
	t.Log(err)
	db, err = engine.Open(other)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if lsn, _ := db.LastLSN(); lsn != wantLSN {
		t.Fatalf("foreign file changed: LSN %d, was %d", lsn, wantLSN)
	}
	if h, _ := db.LogicalHash(); h != wantHash {
		t.Fatal("foreign file's graph changed")
	}
	if m, _ := filepath.Glob(other + ".replaced-*"); len(m) > 0 {
		t.Fatalf("foreign file moved aside: %v", m)
	}
}

// A stream missing the next transaction stops the replica with
// ErrStreamGap and nothing past its LSN applied.
func TestStreamGapRefused(t *testing.T) {
	s := startNATS(t, t.TempDir(), 0)
	url := s.ClientURL()
	p := openMember(t, dbPath(t, "p.db"), testConfig(url, "gap", "p", Primary, Sync))
	rpath := dbPath(t, "r.db")
	r, err := tryOpenMember(rpath, testConfig(url, "gap", "r", Replica, Sync))
	if err != nil {
		t.Fatal(err)
	}
	at := writeNodes(t, p.db, 0, 3)
	waitApplied(t, r, at)
	r.db.Close()
	writeNodes(t, p.db, 3, 3)
	seq, err := p.node.findSeq(context.Background(), at+1)
	if err != nil || seq == 0 {
		t.Fatalf("find LSN %d: %d %v", at+1, seq, err)
	}
	if err := p.node.stream.DeleteMsg(context.Background(), seq); err != nil {
		t.Fatal(err)
	}
	r = openMember(t, rpath, testConfig(url, "gap", "r", Replica, Sync))
	deadline := time.Now().Add(5 * time.Second)
	for r.node.Status().Err == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := r.node.Status()
	if !strings.Contains(st.Err, ErrStreamGap.Error()) {
		t.Fatalf("replica status %+v, want a stream gap error", st)
	}
	t.Log(st.Err)
	if lsn, _ := r.db.LastLSN(); lsn != at {
		t.Fatalf("replica moved to LSN %d past the gap after %d", lsn, at)
	}
}

// A snapshot that does not verify (its content does not match the
// logical hash recorded with it) is refused and no file is created.
func TestSnapshotFailsVerification(t *testing.T) {
	s := startNATS(t, t.TempDir(), 0)
	url := s.ClientURL()
	p := openMember(t, dbPath(t, "p.db"), testConfig(url, "badsnap", "p", Primary, Sync))
	writeNodes(t, p.db, 0, 3)
	info, err := p.node.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Same bytes, metadata naming another graph.
	ctx := context.Background()
	res, err := p.node.obs.GetBytes(ctx, snapObject)
	if err != nil {
		t.Fatal(err)
	}
	bad := *info
	bad.Hash = strings.Repeat("0", 64)
	if _, err := p.node.obs.PutBytes(ctx, snapObject, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := p.node.obs.Put(ctx, jetstream.ObjectMeta{Name: snapObject, Metadata: bad.metadata()}, strings.NewReader(string(res))); err != nil {
		t.Fatal(err)
	}
	rpath := dbPath(t, "r.db")
	_, err = tryOpenMember(rpath, testConfig(url, "badsnap", "r", Replica, Sync))
	if !errors.Is(err, ErrSnapshot) {
		t.Fatalf("open from a bad snapshot: %v, want ErrSnapshot", err)
	}
	t.Log(err)
	if m, _ := filepath.Glob(rpath + "*"); len(m) > 0 {
		t.Fatalf("files left behind: %v", m)
	}
}

// When JetStream stores a sync commit but its acknowledgement never comes
// (the stream is switched to no-ack), the commit fails saying it is
// committed locally, the next write is refused before committing, and
// once acknowledgements are back the retried publish is recognised as
// already stored: the replica applies the transaction exactly once and
// writes resume.
func TestSyncCommitNotAcknowledged(t *testing.T) {
	s := startNATS(t, t.TempDir(), 0)
	url := s.ClientURL()
	cfg := testConfig(url, "noack", "p", Primary, Sync)
	cfg.LeaseTTL = 5 * time.Second
	cfg.SyncTimeout = 300 * time.Millisecond
	p := openMember(t, dbPath(t, "p.db"), cfg)
	rcfg := testConfig(url, "noack", "r", Replica, Sync)
	rcfg.LeaseTTL = cfg.LeaseTTL
	r := openMember(t, dbPath(t, "r.db"), rcfg)
	lsn := writeNodes(t, p.db, 0, 3)
	waitApplied(t, r, lsn)

	ctx := context.Background()
	setNoAck := func(v bool) {
		t.Helper()
		info, err := p.node.stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := info.Config
		c.NoAck = v
		if _, err := p.node.js.UpdateStream(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	setNoAck(true)
	err := p.db.Update(func(tx *engine.Tx) error {
		_, err := tx.CreateNode("item", engine.Properties{"i": engine.IntValue(3)})
		return err
	})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "committed locally") {
		t.Fatalf("sync write without acknowledgement: %v", err)
	}
	t.Log(err)
	unacked, _ := p.db.LastLSN()
	err = p.db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("item", nil); return err })
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("second sync write without acknowledgement: %v", err)
	}
	t.Log(err)
	if now, _ := p.db.LastLSN(); now != unacked {
		t.Fatalf("a refused write committed: LSN %d -> %d", unacked, now)
	}
	setNoAck(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err = p.db.Update(func(tx *engine.Tx) error {
			_, err := tx.CreateNode("item", engine.Properties{"i": engine.IntValue(4)})
			return err
		})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes did not resume: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	lsn, _ = p.db.LastLSN()
	waitApplied(t, r, lsn)
	sameGraph(t, p, r, lsn)
	// Each transaction once in the stream: LSNs 1..lsn, one message each,
	// plus the promotion marker.
	info, err := p.node.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != lsn+1 {
		t.Fatalf("stream holds %d messages for %d transactions and a marker", info.State.Msgs, lsn)
	}
}

// A replica behind the snapshot when the stream holds no transaction at
// all (purged) restores the snapshot at open instead of waiting for a
// next transaction it could never apply.
func TestReplicaBehindSnapshotEmptyStream(t *testing.T) {
	s := startNATS(t, t.TempDir(), 0)
	url := s.ClientURL()
	p := openMember(t, dbPath(t, "p.db"), testConfig(url, "empty", "p", Primary, Sync))
	rpath := dbPath(t, "r.db")
	r, err := tryOpenMember(rpath, testConfig(url, "empty", "r", Replica, Sync))
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, r, writeNodes(t, p.db, 0, 3))
	r.db.Close()
	lsn := writeNodes(t, p.db, 3, 3)
	if _, err := p.node.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.node.stream.Purge(context.Background()); err != nil {
		t.Fatal(err)
	}
	r = openMember(t, rpath, testConfig(url, "empty", "r", Replica, Sync))
	if got, _ := r.db.LastLSN(); got != lsn {
		t.Fatalf("replica opened at LSN %d, the snapshot is at %d", got, lsn)
	}
	sameGraph(t, p, r, lsn)
}
