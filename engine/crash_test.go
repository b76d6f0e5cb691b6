package engine

// Crash test: a child process commits transactions in a loop and prints
// "ACK N" after each Commit returns; the parent SIGKILLs it at a random
// moment, reopens the database and checks that every acknowledged
// transaction is there whole and nothing partial is visible. The same
// database is reused across rounds so recovery runs on a growing file,
// with some rounds using group commit and some running checkpoints
// concurrently in the child so the kill can land mid-checkpoint.
//
// Each transaction with sequence number s (1, 2, 3, ...):
//   - creates node Seq{seq: s} (with a blob when s%10 == 0) and REF edges
//     from it to the Seq nodes crashTargets(s), each with property seq: s;
//   - creates node Tmp{seq: s} with a TMP edge to Seq(s) and deletes every
//     Tmp node with seq <= s-2;
//   - sets Seq(s/2).touched = s, removes Seq(s-1).blob when s%7 == 0;
//   - sets Counter.last = s and Counter.sum += s.

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func crashTargets(s int64) []int64 {
	var out []int64
	for _, t := range []int64{s - 1, s / 2, s/3 + 1} {
		if t >= 1 && t < s && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

func crashBlob(s int64) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("blob-%d;", s)), 700) // several overflow pages
}

// crashTx runs one transaction of the workload and returns its sequence.
func crashTx(tx *Tx) (int64, error) {
	cs, err := tx.NodesByLabel("Counter")
	if err != nil {
		return 0, err
	}
	var counter NodeID
	var last, sum int64
	if len(cs) == 0 {
		if counter, err = tx.CreateNode("Counter", Properties{"last": IntValue(0), "sum": IntValue(0)}); err != nil {
			return 0, err
		}
	} else {
		n, err := tx.GetNode(cs[0])
		if err != nil {
			return 0, err
		}
		counter = cs[0]
		last, _ = n.Properties["last"].Int()
		sum, _ = n.Properties["sum"].Int()
	}
	s := last + 1
	seqNode := func(v int64) (NodeID, error) {
		ids, err := tx.NodesByProperty("seq", IntValue(v))
		if err != nil {
			return 0, err
		}
		for _, id := range ids {
			n, err := tx.GetNode(id)
			if err != nil {
				return 0, err
			}
			if n.Label() == "Seq" {
				return id, nil
			}
		}
		return 0, fmt.Errorf("Seq node %d: %w", v, ErrNotFound)
	}
	props := Properties{"seq": IntValue(s)}
	if s%10 == 0 {
		props["blob"] = BytesValue(crashBlob(s))
	}
	id, err := tx.CreateNode("Seq", props)
	if err != nil {
		return 0, err
	}
	for _, t := range crashTargets(s) {
		to, err := seqNode(t)
		if err != nil {
			return 0, err
		}
		if _, err := tx.CreateEdge(id, to, "REF", Properties{"seq": IntValue(s)}); err != nil {
			return 0, err
		}
	}
	tmp, err := tx.CreateNode("Tmp", Properties{"seq": IntValue(s)})
	if err != nil {
		return 0, err
	}
	if _, err := tx.CreateEdge(tmp, id, "TMP", nil); err != nil {
		return 0, err
	}
	tmps, err := tx.NodesByLabel("Tmp")
	if err != nil {
		return 0, err
	}
	for _, t := range tmps {
		n, err := tx.GetNode(t)
		if err != nil {
			return 0, err
		}
		if v, _ := n.Properties["seq"].Int(); v <= s-2 {
			if err := tx.DeleteNode(t); err != nil {
				return 0, err
			}
		}
	}
	if s >= 2 {
		half, err := seqNode(s / 2)
		if err != nil {
			return 0, err
		}
		if err := tx.SetNodeProperty(half, "touched", IntValue(s)); err != nil {
			return 0, err
		}
	}
	if s%7 == 0 {
		prev, err := seqNode(s - 1)
		if err != nil {
			return 0, err
		}
		if err := tx.RemoveNodeProperty(prev, "blob"); err != nil {
			return 0, err
		}
	}
	if err := tx.SetNodeProperty(counter, "last", IntValue(s)); err != nil {
		return 0, err
	}
	if err := tx.SetNodeProperty(counter, "sum", IntValue(sum+s)); err != nil {
		return 0, err
	}
	return s, nil
}

// TestCrashChild is the child process of TestCrashRecovery.
func TestCrashChild(t *testing.T) {
	if !childMode(t, "crash") {
		return
	}
	path := os.Getenv("SOMBRA_CHILD_DB")
	workers, _ := strconv.Atoi(os.Getenv("SOMBRA_CHILD_WORKERS"))
	auto, _ := strconv.Atoi(os.Getenv("SOMBRA_CHILD_AUTOCKPT"))
	ckpt := os.Getenv("SOMBRA_CHILD_CKPT")
	db, err := OpenWithConfig(path, Config{WALAutoCheckpoint: auto})
	if err != nil {
		childFail("open: %v", err)
	}
	if err := db.CreatePropertyIndex("seq"); err != nil {
		childFail("index: %v", err)
	}
	if os.Getenv("SOMBRA_CHILD_GROUP") == "1" {
		if err := db.EnableGroupCommit(2*time.Millisecond, workers); err != nil {
			childFail("group commit: %v", err)
		}
	}
	kick := make(chan struct{}, 1)
	if ckpt != "" {
		modes := map[string]CheckpointMode{"full": CheckpointFull, "restart": CheckpointRestart, "truncate": CheckpointTruncate}
		var ms []CheckpointMode
		for _, name := range strings.Split(ckpt, ",") {
			ms = append(ms, modes[name])
		}
		go func() {
			for i := 0; ; i++ {
				<-kick
				if _, err := db.CheckpointWithMode(ms[i%len(ms)]); err != nil && !errors.Is(err, ErrBusy) {
					childFail("checkpoint: %v", err)
				}
			}
		}()
	}
	childSay("READY")
	var wg sync.WaitGroup
	var mu sync.Mutex
	commits := 0
	for w := 0; w < max(workers, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var s int64
				err := db.Update(func(tx *Tx) error {
					var err error
					s, err = crashTx(tx)
					return err
				})
				if err != nil {
					childFail("commit: %v", err)
				}
				childSay("ACK %d", s)
				mu.Lock()
				commits++
				if commits%4 == 0 {
					select {
					case kick <- struct{}{}:
					default:
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// crashVerify checks the database after a crash and returns the highest
// sequence present.
func crashVerify(path string) (int64, error) {
	db, err := Open(path)
	if err != nil {
		return 0, fmt.Errorf("reopen: %w", err)
	}
	defer db.Close()
	var maxSeq int64
	err = db.View(func(tx *Tx) error {
		seqs := map[int64]*Node{}
		tmps := map[int64]*Node{}
		var counter *Node
		n := 0
		for nd, err := range tx.Nodes() {
			if err != nil {
				return err
			}
			n++
			s, _ := nd.Properties["seq"].Int()
			switch nd.Label() {
			case "Seq":
				if seqs[s] != nil {
					return fmt.Errorf("two Seq nodes with seq %d", s)
				}
				seqs[s] = nd
			case "Tmp":
				tmps[s] = nd
			case "Counter":
				if counter != nil {
					return fmt.Errorf("two counters")
				}
				counter = nd
			default:
				return fmt.Errorf("node %d has label %q", nd.ID, nd.Label())
			}
		}
		if uint64(n) != tx.NodeCount() {
			return fmt.Errorf("iterated %d nodes, NodeCount says %d", n, tx.NodeCount())
		}
		maxSeq = int64(len(seqs))
		for s := int64(1); s <= maxSeq; s++ {
			if seqs[s] == nil {
				return fmt.Errorf("%d Seq nodes but seq %d missing (not a prefix)", len(seqs), s)
			}
		}
		if maxSeq == 0 {
			if n != 0 && counter == nil {
				return fmt.Errorf("nodes without a counter")
			}
			return nil
		}
		if counter == nil {
			return fmt.Errorf("no counter node")
		}
		last, _ := counter.Properties["last"].Int()
		sum, _ := counter.Properties["sum"].Int()
		if last != maxSeq || sum != maxSeq*(maxSeq+1)/2 {
			return fmt.Errorf("counter last=%d sum=%d, Seq nodes 1..%d", last, sum, maxSeq)
		}
		wantTmp := []int64{maxSeq}
		if maxSeq > 1 {
			wantTmp = []int64{maxSeq - 1, maxSeq}
		}
		if len(tmps) != len(wantTmp) || tmps[wantTmp[0]] == nil || tmps[maxSeq] == nil {
			var got []int64
			for s := range tmps {
				got = append(got, s)
			}
			return fmt.Errorf("Tmp nodes %v, want %v", got, wantTmp)
		}
		for s, nd := range seqs {
			touched, has := nd.Properties["touched"].Int()
			var want int64
			switch {
			case 2*s+1 <= maxSeq:
				want = 2*s + 1
			case 2*s <= maxSeq:
				want = 2 * s
			}
			if (want == 0) == has || touched != want {
				return fmt.Errorf("Seq %d touched=%d (present %v), want %d", s, touched, has, want)
			}
			blob, hasBlob := nd.Properties["blob"].BytesValue()
			wantBlob := s%10 == 0 && !((s+1)%7 == 0 && s+1 <= maxSeq)
			if hasBlob != wantBlob || (hasBlob && !bytes.Equal(blob, crashBlob(s))) {
				return fmt.Errorf("Seq %d blob present=%v (len %d), want %v", s, hasBlob, len(blob), wantBlob)
			}
		}
		// edges
		ne := 0
		refs := map[int64][]NodeID{}
		for e, err := range tx.Edges() {
			if err != nil {
				return err
			}
			ne++
			switch e.Label {
			case "REF":
				s, _ := e.Properties["seq"].Int()
				if seqs[s] == nil || seqs[s].ID != e.From {
					return fmt.Errorf("REF edge %d (seq %d) from node %d", e.ID, s, e.From)
				}
				refs[s] = append(refs[s], e.To)
			case "TMP":
				to, err := tx.GetNode(e.To)
				if err != nil {
					return fmt.Errorf("TMP edge %d: %w", e.ID, err)
				}
				ts, _ := to.Properties["seq"].Int()
				if tmps[ts] == nil || tmps[ts].ID != e.From {
					return fmt.Errorf("TMP edge %d from %d does not come from Tmp(%d)", e.ID, e.From, ts)
				}
			default:
				return fmt.Errorf("edge %d label %q", e.ID, e.Label)
			}
		}
		if uint64(ne) != tx.EdgeCount() {
			return fmt.Errorf("iterated %d edges, EdgeCount says %d", ne, tx.EdgeCount())
		}
		nref := 0
		for s := int64(1); s <= maxSeq; s++ {
			var want []NodeID
			for _, t := range crashTargets(s) {
				want = append(want, seqs[t].ID)
			}
			if !idsEqual(refs[s], want) {
				return fmt.Errorf("Seq %d has REF edges to %v, want %v", s, refs[s], want)
			}
			nb, err := tx.Neighbors(seqs[s].ID)
			if err != nil || !idsEqual(nb, want) {
				return fmt.Errorf("Neighbors(Seq %d) = %v, %v; want %v", s, nb, err, want)
			}
			nref += len(want)
		}
		if ne != nref+len(tmps) {
			return fmt.Errorf("%d edges, want %d REF + %d TMP", ne, nref, len(tmps))
		}
		// the property index agrees with the records (sampled)
		for i := 0; i < 100; i++ {
			s := 1 + rand.Int64N(maxSeq)
			ids, err := tx.NodesByProperty("seq", IntValue(s))
			if err != nil {
				return err
			}
			want := []NodeID{seqs[s].ID}
			if tmps[s] != nil {
				want = append(want, tmps[s].ID)
				slices.Sort(want)
			}
			if !idsEqual(ids, want) {
				return fmt.Errorf("NodesByProperty(seq=%d) = %v, want %v", s, ids, want)
			}
		}
		if ls, err := tx.NodesByLabel("Seq"); err != nil || int64(len(ls)) != maxSeq {
			return fmt.Errorf("NodesByLabel(Seq) = %d ids, %v", len(ls), err)
		}
		return nil
	})
	if err != nil {
		return maxSeq, err
	}
	info, err := db.Info()
	if err != nil {
		return maxSeq, err
	}
	for _, lc := range info.Labels {
		if lc.Label == "Seq" && int64(lc.Count) != maxSeq {
			return maxSeq, fmt.Errorf("Info: %d Seq nodes, want %d", lc.Count, maxSeq)
		}
	}
	return maxSeq, nil
}

func TestCrashRecovery(t *testing.T) {
	rounds := 100
	if s, err := strconv.Atoi(os.Getenv("SOMBRA_CRASH_ROUNDS")); err == nil {
		rounds = s
	}
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 7))
	t.Logf("seed %d", seed)
	path := filepath.Join(t.TempDir(), "crash.db")
	var last int64 // highest sequence known durable
	totalAcks := 0
	start := time.Now()
	for round := 0; round < rounds; round++ {
		workers, group, ckpt, auto := 1, "0", "", 1000
		switch round % 5 {
		case 1:
			workers, group = 4, "1"
		case 2:
			ckpt = "full"
		case 3:
			ckpt, auto = "truncate,full,restart", 8
		case 4:
			workers, group, ckpt, auto = 3, "1", "full,truncate", 5
		}
		c := startChild(t, "TestCrashChild", "crash", "SOMBRA_CHILD_DB="+path, "SOMBRA_CHILD_WORKERS="+strconv.Itoa(workers),
			"SOMBRA_CHILD_GROUP="+group, "SOMBRA_CHILD_CKPT="+ckpt, "SOMBRA_CHILD_AUTOCKPT="+strconv.Itoa(auto))
		var delay time.Duration
		if rng.IntN(10) == 0 {
			// sometimes kill during start-up (open, recovery, index creation)
			delay = time.Duration(rng.IntN(15)) * time.Millisecond
		} else {
			c.expect("READY", 30*time.Second)
			delay = time.Duration(5+rng.IntN(56)) * time.Millisecond
		}
		time.Sleep(delay)
		lines := c.kill()
		if e := c.stderr.String(); strings.Contains(e, "panic") || strings.Contains(e, "DATA RACE") {
			t.Fatalf("round %d: child failed:\n%s", round, e)
		}
		acked := map[int64]bool{}
		for _, l := range lines {
			if strings.HasPrefix(l, "ERR") {
				t.Fatalf("round %d: child reported %s\nstderr:\n%s", round, l, c.stderr.String())
			}
			if v, ok := strings.CutPrefix(l, "ACK "); ok {
				s, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Fatalf("round %d: bad line %q", round, l)
				}
				acked[s] = true
			}
		}
		totalAcks += len(acked)
		maxSeq, err := crashVerify(path)
		if err != nil {
			t.Fatalf("round %d (seed %d, workers %d, group %s, ckpt %q, delay %v, %d acks): %v",
				round, seed, workers, group, ckpt, delay, len(acked), err)
		}
		unacked := 0
		for s := last + 1; s <= maxSeq; s++ {
			if !acked[s] {
				unacked++
			}
		}
		for s := range acked {
			if s > maxSeq {
				t.Fatalf("round %d: seq %d was acknowledged but is missing after recovery (max %d)", round, s, maxSeq)
			}
			if s <= last {
				t.Fatalf("round %d: seq %d acknowledged twice", round, s)
			}
		}
		if unacked > workers {
			t.Fatalf("round %d: %d un-acknowledged transactions present beyond the acks (workers %d)", round, unacked, workers)
		}
		if maxSeq < last {
			t.Fatalf("round %d: max seq went back from %d to %d", round, last, maxSeq)
		}
		last = maxSeq
	}
	t.Logf("%d rounds, %d acknowledged transactions, final seq %d, %v", rounds, totalAcks, last, time.Since(start).Round(time.Millisecond))
	if st, err := os.Stat(path); err == nil {
		t.Logf("database %d bytes", st.Size())
	}
}
