package index

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/sombradb/sombra/engine"
)

func setup(t *testing.T) *engine.DB {
	t.Helper()
	db, err := engine.Open(filepath.Join(t.TempDir(), "i.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	err = db.Update(func(tx *engine.Tx) error {
		for i := range 10 {
			// 10 users, 5 distinct domains; 2 posts.
			if _, err := tx.CreateNode("User", engine.Properties{
				"email":  engine.StringValue(fmt.Sprintf("u%d@example.com", i)),
				"domain": engine.StringValue(fmt.Sprintf("d%d", i%5)),
			}); err != nil {
				return err
			}
		}
		for range 2 {
			if _, err := tx.CreateNode("Post", nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func statsByName(t *testing.T, im *IndexManager) map[string]engine.IndexStat {
	t.Helper()
	st, err := im.GetIndexStatistics()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]engine.IndexStat{}
	for _, s := range st {
		out[s.Name] = s
	}
	return out
}

func TestIndexManager(t *testing.T) {
	db := setup(t)
	im := NewIndexManager(db)
	for _, p := range []string{"email", "domain"} {
		if err := im.CreatePropertyIndex(p); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]engine.IndexStat{
		"label:User":      {Name: "label:User", Kind: "label", Entries: 10, Distinct: 1, Selectivity: 10.0 / 12},
		"label:Post":      {Name: "label:Post", Kind: "label", Entries: 2, Distinct: 1, Selectivity: 2.0 / 12},
		"property:email":  {Name: "property:email", Kind: "property", Entries: 10, Distinct: 10, Selectivity: 1},
		"property:domain": {Name: "property:domain", Kind: "property", Entries: 10, Distinct: 5, Selectivity: 0.5},
	}
	check := func(when string) {
		t.Helper()
		got := statsByName(t, im)
		if len(got) != len(want) {
			t.Errorf("%s: stats %v", when, got)
		}
		for name, w := range want {
			if got[name] != w {
				t.Errorf("%s: %s = %+v, want %+v", when, name, got[name], w)
			}
		}
	}
	check("after create")
	if err := im.RebuildAllIndexes(); err != nil {
		t.Fatal(err)
	}
	check("after rebuild all")
	if err := im.RebuildLabelIndex("User"); err != nil {
		t.Fatal(err)
	}
	if err := im.RebuildPropertyIndex("email"); err != nil {
		t.Fatal(err)
	}
	if err := im.Rebuild("property:domain"); err != nil {
		t.Fatal(err)
	}
	if err := im.Rebuild("label:Post"); err != nil {
		t.Fatal(err)
	}
	check("after targeted rebuilds")
	// The indexes still answer queries.
	ids, err := db.NodesByProperty("email", engine.StringValue("u3@example.com"))
	if err != nil || len(ids) != 1 {
		t.Errorf("lookup by email: %v, %v", ids, err)
	}
	users, err := db.NodesByLabel("User")
	if err != nil || len(users) != 10 {
		t.Errorf("users: %d, %v", len(users), err)
	}
	s, err := im.Statistic("property:domain")
	if err != nil || s.Distinct != 5 {
		t.Errorf("Statistic: %+v, %v", s, err)
	}
	if _, err := im.Statistic("property:nope"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("missing statistic: %v", err)
	}

	if err := im.RebuildPropertyIndex("phone"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("rebuild of a missing property index: %v", err)
	}
	if err := im.RebuildLabelIndex(""); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("empty label: %v", err)
	}
	if err := im.Rebuild("users"); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("bad index name: %v", err)
	}
	if err := im.DropPropertyIndex("domain"); err != nil {
		t.Fatal(err)
	}
	delete(want, "property:domain")
	check("after drop")
}

// recorder is a Maintainer that records calls (standing in for an
// access-checked session).
type recorder struct {
	calls []string
	err   error
}

func (r *recorder) RebuildAllIndexes() error { r.calls = append(r.calls, "all"); return r.err }
func (r *recorder) RebuildLabelIndex(l string) error {
	r.calls = append(r.calls, "label "+l)
	return r.err
}
func (r *recorder) RebuildPropertyIndex(n string) error {
	r.calls = append(r.calls, "property "+n)
	return r.err
}
func (r *recorder) CreatePropertyIndex(n string) error {
	r.calls = append(r.calls, "create "+n)
	return r.err
}
func (r *recorder) DropPropertyIndex(n string) error {
	r.calls = append(r.calls, "drop "+n)
	return r.err
}

func TestIndexManagerWith(t *testing.T) {
	db := setup(t)
	denied := errors.New("permission denied")
	rec := &recorder{err: denied}
	im := NewIndexManagerWith(db, rec)
	if err := im.RebuildAllIndexes(); !errors.Is(err, denied) {
		t.Errorf("err = %v", err)
	}
	im.RebuildLabelIndex("User")
	im.Rebuild("property:email")
	if fmt.Sprint(rec.calls) != "[all label User property email]" {
		t.Errorf("calls = %v", rec.calls)
	}
	if st, err := im.GetIndexStatistics(); err != nil || len(st) != 2 { // the two labels
		t.Errorf("stats: %v, %v", st, err)
	}
}
