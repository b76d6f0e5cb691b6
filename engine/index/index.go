// Package index is the guide's IndexManager: index maintenance on one
// database (rebuilding label and property indexes, statistics). It
// delegates to the engine (engine.DB.RebuildAllIndexes and friends), which
// does each rebuild in one write transaction.
package index

import (
	"fmt"
	"strings"

	"github.com/sombradb/sombra/engine"
)

// Maintainer runs the index changes. *engine.DB is one; so is anything
// with the same methods that checks who asks (an access-controlled
// session, for instance).
type Maintainer interface {
	RebuildAllIndexes() error
	RebuildLabelIndex(label string) error
	RebuildPropertyIndex(name string) error
	CreatePropertyIndex(name string) error
	DropPropertyIndex(name string) error
}

// IndexManager maintains the indexes of one database.
type IndexManager struct {
	db *engine.DB
	m  Maintainer
}

// NewIndexManager returns an IndexManager for db.
func NewIndexManager(db *engine.DB) *IndexManager { return &IndexManager{db: db, m: db} }

// NewIndexManagerWith returns an IndexManager that makes its changes
// through m (statistics are read from db).
func NewIndexManagerWith(db *engine.DB, m Maintainer) *IndexManager {
	return &IndexManager{db: db, m: m}
}

// RebuildAllIndexes rebuilds the label index, every property index and the
// catalog counters from the node and edge records, in one transaction.
func (im *IndexManager) RebuildAllIndexes() error {
	return wrap("rebuild all indexes", im.m.RebuildAllIndexes())
}

// RebuildLabelIndex rebuilds the label index entries of one label.
func (im *IndexManager) RebuildLabelIndex(label string) error {
	if label == "" {
		return fmt.Errorf("rebuild label index: empty label: %w", engine.ErrInvalid)
	}
	return wrap("rebuild label index "+label, im.m.RebuildLabelIndex(label))
}

// RebuildPropertyIndex drops and refills one property index; it fails with
// engine.ErrNotFound if there is no index on that property.
func (im *IndexManager) RebuildPropertyIndex(name string) error {
	return wrap("rebuild property index "+name, im.m.RebuildPropertyIndex(name))
}

// CreatePropertyIndex indexes a property, filling the index from the
// existing nodes (a no-op if it exists).
func (im *IndexManager) CreatePropertyIndex(name string) error {
	return wrap("create property index "+name, im.m.CreatePropertyIndex(name))
}

// DropPropertyIndex removes a property index.
func (im *IndexManager) DropPropertyIndex(name string) error {
	return wrap("drop property index "+name, im.m.DropPropertyIndex(name))
}

// Rebuild rebuilds the index named as in IndexStat.Name: "label:NAME" or
// "property:NAME".
func (im *IndexManager) Rebuild(statName string) error {
	kind, name, ok := strings.Cut(statName, ":")
	switch {
	case ok && kind == "label":
		return im.RebuildLabelIndex(name)
	case ok && kind == "property":
		return im.RebuildPropertyIndex(name)
	}
	return fmt.Errorf("index name %q (want label:NAME or property:NAME): %w", statName, engine.ErrInvalid)
}

// GetIndexStatistics reports every index: label indexes (entries, and the
// share of nodes carrying the label as selectivity) and property indexes
// (entries, distinct values, and distinct/entries as selectivity).
func (im *IndexManager) GetIndexStatistics() ([]engine.IndexStat, error) {
	st, err := im.db.IndexStatistics()
	if err != nil {
		return nil, fmt.Errorf("index statistics: %w", err)
	}
	return st, nil
}

// Statistic returns the statistics of one index (named as in
// IndexStat.Name); engine.ErrNotFound if there is none.
func (im *IndexManager) Statistic(statName string) (engine.IndexStat, error) {
	all, err := im.GetIndexStatistics()
	if err != nil {
		return engine.IndexStat{}, err
	}
	for _, s := range all {
		if s.Name == statName {
			return s, nil
		}
	}
	return engine.IndexStat{}, fmt.Errorf("index %q: %w", statName, engine.ErrNotFound)
}

func wrap(what string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
