package replication

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
	"github.com/sombradb/sombra/engine"
)

// Message headers. A transaction larger than one NATS message is split
// into parts published one after another (each fenced).
const (
	hKind = "Sombra-Kind" // "tx" or "promote"
	hFile = "Sombra-File" // file id of the database, hex
	hLSN  = "Sombra-LSN"
	hTime = "Sombra-Time" // commit time, unix nanoseconds
	hPart = "Sombra-Part" // "i/n", 1-based
	hSum  = "Sombra-Sum"  // CRC32C of the uncompressed payload, hex
	hNode = "Sombra-Node"
	hAddr = "Sombra-Addr"

	kindTx      = "tx"
	kindPromote = "promote"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeTx serialises the pages (id, length, bytes each), compresses
// them, and splits the result into parts of at most maxPart bytes.
func encodeTx(tx engine.ReplicatedTx, maxPart int) (parts [][]byte, sum uint32) {
	n := 0
	for _, p := range tx.Pages {
		n += 12 + len(p.Data)
	}
	raw := make([]byte, 0, n)
	for _, p := range tx.Pages {
		raw = binary.LittleEndian.AppendUint64(raw, p.ID)
		raw = binary.LittleEndian.AppendUint32(raw, uint32(len(p.Data)))
		raw = append(raw, p.Data...)
	}
	sum = crc32.Checksum(raw, castagnoli)
	z := s2.Encode(nil, raw)
	for len(z) > maxPart {
		parts = append(parts, z[:maxPart])
		z = z[maxPart:]
	}
	return append(parts, z), sum
}

// decodeTx reverses encodeTx on the joined parts.
func decodeTx(z []byte, sum uint32) ([]engine.ReplicatedPage, error) {
	raw, err := s2.Decode(nil, z)
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	if got := crc32.Checksum(raw, castagnoli); got != sum {
		return nil, fmt.Errorf("checksum %08x, header says %08x", got, sum)
	}
	var pages []engine.ReplicatedPage
	for len(raw) > 0 {
		if len(raw) < 12 {
			return nil, fmt.Errorf("truncated page record")
		}
		id := binary.LittleEndian.Uint64(raw)
		n := int(binary.LittleEndian.Uint32(raw[8:]))
		if len(raw) < 12+n {
			return nil, fmt.Errorf("truncated page %d", id)
		}
		pages = append(pages, engine.ReplicatedPage{ID: id, Data: raw[12 : 12+n]})
		raw = raw[12+n:]
	}
	return pages, nil
}

// msgInfo is a decoded message header.
type msgInfo struct {
	kind       string
	file       uint64
	lsn        uint64
	time       time.Time
	part, of   int
	sum        uint32
	node, addr string
	state      uint32 // digest of the state after the transaction (digest.go); 0: unknown
}

func parseHeader(h nats.Header) (msgInfo, error) {
	var m msgInfo
	m.kind = h.Get(hKind)
	m.node, m.addr = h.Get(hNode), h.Get(hAddr)
	var err error
	if m.file, err = strconv.ParseUint(h.Get(hFile), 16, 64); err != nil {
		return m, fmt.Errorf("message without a valid %s header: not a Sombra replication stream", hFile)
	}
	if m.kind == kindPromote {
		return m, nil
	}
	if m.kind != kindTx {
		return m, fmt.Errorf("message of unknown kind %q", m.kind)
	}
	if m.lsn, err = strconv.ParseUint(h.Get(hLSN), 10, 64); err != nil || m.lsn == 0 {
		return m, fmt.Errorf("message without a valid %s header", hLSN)
	}
	ns, err := strconv.ParseInt(h.Get(hTime), 10, 64)
	if err != nil {
		return m, fmt.Errorf("message without a valid %s header", hTime)
	}
	m.time = time.Unix(0, ns)
	a, b, ok := strings.Cut(h.Get(hPart), "/")
	m.part, err = strconv.Atoi(a)
	of, err2 := strconv.Atoi(b)
	if !ok || err != nil || err2 != nil || m.part < 1 || m.part > of {
		return m, fmt.Errorf("message without a valid %s header", hPart)
	}
	m.of = of
	s, err := strconv.ParseUint(h.Get(hSum), 16, 32)
	if err != nil {
		return m, fmt.Errorf("message without a valid %s header", hSum)
	}
	m.sum = uint32(s)
	if v := h.Get(hState); v != "" {
		d, err := strconv.ParseUint(v, 16, 32)
		if err != nil {
			return m, fmt.Errorf("message without a valid %s header", hState)
		}
		m.state = uint32(d)
	}
	return m, nil
}

func hex64(v uint64) string { return fmt.Sprintf("%016x", v) }
