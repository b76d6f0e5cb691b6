package replication

import (
	"fmt"
	"hash/crc32"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/handle"
	"github.com/sombradb/sombra/engine/internal/page"
)

// The state digest identifies what a transaction left behind: a CRC of
// its header page (tree roots, page count, id counters, counts, space
// statistics) with the checkpoint fields zeroed, since checkpoints
// rewrite those locally. A node that committed LSN L on its own (a
// primary killed before publishing it) almost surely has another digest
// at L than the stream's L: that is how a diverged file is recognised.
const hState = "Sombra-State"

func metaDigest(m page.Meta) uint32 {
	m.CheckpointLSN, m.CheckpointTime = 0, 0
	b := make([]byte, 1024) // the smallest page: room for the statistics after MetaSize
	m.Encode(b)
	return crc32.Checksum(b[16:], castagnoli) // after the page header (type, checksum)
}

// txDigest is the digest of a shipped transaction's header page.
func txDigest(tx engine.ReplicatedTx) (uint32, error) {
	for _, p := range tx.Pages {
		if p.ID == 0 {
			m, err := page.DecodeMeta(p.Data)
			if err != nil {
				return 0, err
			}
			return metaDigest(*m), nil
		}
	}
	return 0, fmt.Errorf("transaction %d has no header page", tx.LSN)
}

// localDigest is the LSN and digest of the database's current state.
func localDigest(db *engine.DB) (uint64, uint32, error) {
	s, err := handle.Pager(db).BeginRead()
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	m, err := s.Meta()
	if err != nil {
		return 0, 0, err
	}
	return uint64(m.LastLSN), metaDigest(*m), nil
}
