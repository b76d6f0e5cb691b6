package page

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/sombradb/sombra/engine/internal/common"
)

// Magic identifies a Sombra database; it sits at offset 16 of page 0.
const Magic = "SOMBRADB"

// FormatVersion is the on-disk format this code writes and reads.
const FormatVersion = 1

// Tree roots held in the meta page, one per role.
const (
	RootNodes   = iota // node id -> node record
	RootEdges          // edge id -> edge record
	RootAdj            // 'o'|'i' + node id + edge id -> other node id
	RootLabels         // label + 0 + node id -> ()
	RootProps          // property index entries
	RootCatalog        // catalog: index definitions, counters, settings
	NumRoots
)

// Meta is the decoded content of page 0. Byte offsets (little endian):
//
//	[16:24]  magic "SOMBRADB"
//	[24:28]  format version
//	[28:32]  page size
//	[32:40]  page count (pages in the logical database)
//	[40:48]  free-list head page
//	[48:56]  free page count
//	[56:104] six tree roots: nodes, edges, adjacency, labels, properties, catalog
//	[104:112] next node id
//	[112:120] next edge id
//	[120:128] LSN of the last committed transaction
//	[128:136] LSN covered by the last checkpoint
//	[136:144] time of the last checkpoint (unix nanoseconds)
//	[144:152] node count
//	[152:160] edge count
//	[160:168] creation time (unix nanoseconds)
//	[168:176] file id (random, new for every created or compacted file)
//	[176:184] encryption marker "SOMBRENC" (zero bytes: not encrypted)
//	[184:188] page cipher overhead in bytes (28 for AES-256-GCM)
//	[188:232] key check: the cipher's seal of KeyCheckText (page id 2^64-1)
//	[232:240] space statistics marker "SOMBRAST" (zero: not kept, see Stats)
//	[240:288] bytes used in each tree's B+tree pages (leaf and branch), 6×8
//	[288:336] B+tree pages of each tree, 6×8
//	[336:344] overflow pages
//
// Encrypted files keep page 0 in plaintext; every other page is stored
// sealed (see the pager).
type Meta struct {
	Version        uint32
	PageSize       uint32
	PageCount      uint64
	FreeHead       common.PageID
	FreeCount      uint64
	Roots          [NumRoots]common.PageID
	NextNodeID     uint64
	NextEdgeID     uint64
	LastLSN        common.LSN
	CheckpointLSN  common.LSN
	CheckpointTime int64
	NodeCount      uint64
	EdgeCount      uint64
	Created        int64
	FileID         uint64
	// Encrypted is set when the file's pages (but page 0) are sealed with
	// a page cipher; Overhead and KeyCheck describe it.
	Encrypted bool
	Overhead  uint32
	KeyCheck  [KeyCheckSize]byte
	// Stats is the space in use, kept up to date by every commit so that
	// fragmentation is known without reading the file. Files written
	// before it existed have none (Stats.Valid false) until compacted.
	Stats SpaceStats
}

// SpaceStats counts the live pages that a compaction rewrites, and how
// full the B+tree pages of each tree are (a compaction packs each tree
// into pages of its own, so the trees are counted apart).
type SpaceStats struct {
	Valid         bool
	TreeUsed      [NumRoots]int64 // bytes used in each tree's leaf and branch pages
	TreePages     [NumRoots]int64
	OverflowPages int64
}

// Add adds d to s (d is a difference: its fields may be negative).
func (s *SpaceStats) Add(d SpaceStats) {
	for i := range s.TreeUsed {
		s.TreeUsed[i] += d.TreeUsed[i]
		s.TreePages[i] += d.TreePages[i]
	}
	s.OverflowPages += d.OverflowPages
}

// Sub subtracts d from s.
func (s *SpaceStats) Sub(d SpaceStats) {
	for i := range s.TreeUsed {
		s.TreeUsed[i] -= d.TreeUsed[i]
		s.TreePages[i] -= d.TreePages[i]
	}
	s.OverflowPages -= d.OverflowPages
}

// Encryption fields of page 0 (bytes that are zero in plaintext files).
const (
	EncMarker      = "SOMBRENC"
	encOff         = 176
	KeyCheckText   = "SOMBRA-KEY-CHECK"
	KeyCheckSize   = 44 // 12-byte nonce + 16 bytes + 16-byte tag
	KeyCheckPageID = ^uint64(0)
	encEnd         = 188 + KeyCheckSize
	statsMarker    = "SOMBRAST"
	statsOff       = encEnd
	statsEnd       = statsOff + 8 + 16*NumRoots + 8
)

// Encode writes m into page p (type meta) without sealing it.
func (m *Meta) Encode(p []byte) {
	SetType(p, TypeMeta)
	copy(p[16:24], Magic)
	le := binary.LittleEndian
	le.PutUint32(p[24:], m.Version)
	le.PutUint32(p[28:], m.PageSize)
	le.PutUint64(p[32:], m.PageCount)
	le.PutUint64(p[40:], uint64(m.FreeHead))
	le.PutUint64(p[48:], m.FreeCount)
	for i, r := range m.Roots {
		le.PutUint64(p[56+8*i:], uint64(r))
	}
	le.PutUint64(p[104:], m.NextNodeID)
	le.PutUint64(p[112:], m.NextEdgeID)
	le.PutUint64(p[120:], uint64(m.LastLSN))
	le.PutUint64(p[128:], uint64(m.CheckpointLSN))
	le.PutUint64(p[136:], uint64(m.CheckpointTime))
	le.PutUint64(p[144:], m.NodeCount)
	le.PutUint64(p[152:], m.EdgeCount)
	le.PutUint64(p[160:], uint64(m.Created))
	le.PutUint64(p[168:], m.FileID)
	if m.Encrypted {
		copy(p[encOff:encOff+8], EncMarker)
		le.PutUint32(p[184:], m.Overhead)
		copy(p[188:encEnd], m.KeyCheck[:])
	}
	if len(p) < statsEnd {
		return // a buffer shorter than any page: no room for statistics
	}
	clear(p[statsOff:statsEnd])
	if m.Stats.Valid {
		copy(p[statsOff:], statsMarker)
		for i := range NumRoots {
			le.PutUint64(p[statsOff+8+8*i:], uint64(m.Stats.TreeUsed[i]))
			le.PutUint64(p[statsOff+8+8*NumRoots+8*i:], uint64(m.Stats.TreePages[i]))
		}
		le.PutUint64(p[statsEnd-8:], uint64(m.Stats.OverflowPages))
	}
}

// MetaSize is the number of bytes of page 0 that DecodeMeta reads.
const MetaSize = 176

// DecodeMeta parses page 0. It checks the magic and version but not the
// checksum (the caller decides how to treat a bad checksum).
func DecodeMeta(p []byte) (*Meta, error) {
	if len(p) < MetaSize {
		return nil, fmt.Errorf("header is %d bytes: %w", len(p), common.ErrNotADatabase)
	}
	if string(p[16:24]) != Magic {
		return nil, common.ErrNotADatabase
	}
	le := binary.LittleEndian
	m := &Meta{Version: le.Uint32(p[24:]), PageSize: le.Uint32(p[28:])}
	if m.Version > FormatVersion || m.Version == 0 {
		return nil, fmt.Errorf("file has format version %d, this build reads %d: %w", m.Version, FormatVersion, common.ErrVersion)
	}
	if m.PageSize < 1024 || m.PageSize > 65536 || m.PageSize&(m.PageSize-1) != 0 {
		return nil, fmt.Errorf("page size %d: %w", m.PageSize, common.ErrCorrupt)
	}
	m.PageCount = le.Uint64(p[32:])
	m.FreeHead = common.PageID(le.Uint64(p[40:]))
	m.FreeCount = le.Uint64(p[48:])
	for i := range m.Roots {
		m.Roots[i] = common.PageID(le.Uint64(p[56+8*i:]))
	}
	m.NextNodeID = le.Uint64(p[104:])
	m.NextEdgeID = le.Uint64(p[112:])
	m.LastLSN = common.LSN(le.Uint64(p[120:]))
	m.CheckpointLSN = common.LSN(le.Uint64(p[128:]))
	m.CheckpointTime = int64(le.Uint64(p[136:]))
	m.NodeCount = le.Uint64(p[144:])
	m.EdgeCount = le.Uint64(p[152:])
	m.Created = int64(le.Uint64(p[160:]))
	m.FileID = le.Uint64(p[168:])
	if len(p) >= encEnd && string(p[encOff:encOff+8]) == EncMarker {
		m.Encrypted = true
		m.Overhead = le.Uint32(p[184:])
		copy(m.KeyCheck[:], p[188:encEnd])
		if m.Overhead == 0 || m.Overhead >= m.PageSize/2 {
			return nil, fmt.Errorf("encryption overhead %d: %w", m.Overhead, common.ErrCorrupt)
		}
	}
	if len(p) >= statsEnd && string(p[statsOff:statsOff+8]) == statsMarker {
		m.Stats = SpaceStats{Valid: true, OverflowPages: int64(le.Uint64(p[statsEnd-8:]))}
		for i := range NumRoots {
			m.Stats.TreeUsed[i] = int64(le.Uint64(p[statsOff+8+8*i:]))
			m.Stats.TreePages[i] = int64(le.Uint64(p[statsOff+8+8*NumRoots+8*i:]))
		}
	}
	return m, nil
}

// CheckpointAt returns the checkpoint time as a time.Time (zero if never).
func (m *Meta) CheckpointAt() time.Time {
	if m.CheckpointTime == 0 {
		return time.Time{}
	}
	return time.Unix(0, m.CheckpointTime)
}
