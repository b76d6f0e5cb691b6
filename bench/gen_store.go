package bench

import (
	"time"

	"github.com/sombradb/sombra/internal/gengraph"
)

func init() { Register(GenOnly, openGen) }

// GenOnly is the name of the baseline pseudo-engine: it only runs the
// generator, so its bulk_insert time and peak RSS are the share of every
// engine's figures that is not the engine's own.
const GenOnly = "gen"

type genStore struct{}

func openGen(string, Options) (Store, error) { return genStore{}, nil }

func (genStore) BulkLoad(src Source) error {
	return src(func(int, gengraph.Node) error { return nil }, func(gengraph.Edge) error { return nil })
}
func (genStore) GetNode(int64) (bool, error)                { return false, ErrUnsupported }
func (genStore) RangeScan(int64, int64) (int, error)        { return 0, ErrUnsupported }
func (genStore) FullIterate() (int, error)                  { return 0, ErrUnsupported }
func (genStore) Neighbors1Hop(int64) (int, error)           { return 0, ErrUnsupported }
func (genStore) Neighbors2Hop(int64) (int, error)           { return 0, ErrUnsupported }
func (genStore) DurableSingleCommit() error                 { return ErrUnsupported }
func (genStore) EnableGroupCommit(int, time.Duration) error { return ErrUnsupported }
func (genStore) GroupCommitOne() error                      { return ErrUnsupported }
func (genStore) Close() error                               { return nil }
