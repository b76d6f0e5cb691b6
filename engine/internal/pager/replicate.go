package pager

import (
	"fmt"
	"time"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
)

// TxImage is one committed transaction as replication ships it: the
// newest image of every page it wrote (sealed, stamped with its LSN),
// page 0 included.
type TxImage struct {
	LSN   common.LSN
	Time  time.Time
	Pages []PageImage
}

// PageImage is one page of a TxImage. Data must not be modified.
type PageImage struct {
	ID   common.PageID
	Data []byte
}

// Replicator is the pager's view of replication (engine/replication):
// a narrow hook in the commit path. Nil: no replication.
type Replicator interface {
	// BeforeCommit runs under the writer lock before any frame is
	// written; an error aborts the commit with nothing written (a
	// replica, a primary whose lease lapsed or that was fenced).
	BeforeCommit() error
	// Committed runs under the writer lock once the frames are written,
	// so transactions reach it in LSN order. The returned done is called
	// after the local fsync with its result; its error is the commit's.
	Committed(TxImage) (done func(syncErr error) error)
}

// SetReplicator installs the hook. Call it before the first commit.
func (p *Pager) SetReplicator(r Replicator) { p.repl = r }

// image collects the transaction's pages after appendFrames stamped and
// sealed them. Spilled pages not dirty again are read back from the log.
func (t *WriteTx) image(info CommitInfo) (TxImage, error) {
	img := TxImage{LSN: info.LSN, Time: info.Time, Pages: make([]PageImage, 0, len(t.order)+len(t.spilled))}
	for id := range t.spilled {
		if _, ok := t.dirty[id]; ok {
			continue
		}
		b, err := t.cleanPage(id)
		if err != nil {
			return TxImage{}, err
		}
		img.Pages = append(img.Pages, PageImage{ID: id, Data: b})
	}
	for _, id := range t.order {
		img.Pages = append(img.Pages, PageImage{ID: id, Data: t.dirty[id]})
	}
	return img, nil
}

// BeginApply starts a transaction that installs a replicated transaction
// on a replica: it bypasses the Replicator's BeforeCommit (which refuses
// the replica's own writes) and must commit as exactly the LSN that
// follows the replica's.
func (p *Pager) BeginApply() (*WriteTx, error) {
	t, err := p.BeginWrite()
	if err != nil {
		return nil, err
	}
	t.applying = true
	return t, nil
}

// Install sets the transaction's pages to the images of a replicated
// transaction. Page 0 becomes the transaction's header (statistics and
// all, as the primary computed them); its LSN must be the one this
// transaction commits as, or the stream and the file do not line up.
func (t *WriteTx) Install(img TxImage) error {
	if !t.applying {
		return fmt.Errorf("install into a transaction not begun with BeginApply: %w", common.ErrInvalid)
	}
	if img.LSN != t.lsn {
		return fmt.Errorf("replicated transaction has LSN %d, the database expects %d: %w", img.LSN, t.lsn, common.ErrInvalid)
	}
	var meta *page.Meta
	for _, pg := range img.Pages {
		if len(pg.Data) != t.p.usable {
			return fmt.Errorf("replicated page %d has %d bytes, pages here have %d: %w", pg.ID, len(pg.Data), t.p.usable, common.ErrInvalid)
		}
		if pg.ID == 0 {
			m, err := page.DecodeMeta(pg.Data)
			if err != nil {
				return fmt.Errorf("replicated header page: %w: %w", err, common.ErrInvalid)
			}
			meta = m
		}
	}
	if meta == nil {
		return fmt.Errorf("replicated transaction %d has no header page: %w", img.LSN, common.ErrInvalid)
	}
	if meta.LastLSN != img.LSN || meta.FileID != t.Meta.FileID || meta.PageSize != t.Meta.PageSize {
		return fmt.Errorf("replicated header (LSN %d, file %016x, page size %d) does not match (LSN %d, file %016x, page size %d): %w",
			meta.LastLSN, meta.FileID, meta.PageSize, img.LSN, t.Meta.FileID, t.Meta.PageSize, common.ErrInvalid)
	}
	for _, pg := range img.Pages {
		b := make([]byte, len(pg.Data))
		copy(b, pg.Data)
		if _, ok := t.dirty[pg.ID]; !ok {
			t.order = append(t.order, pg.ID)
		}
		t.dirty[pg.ID] = b
	}
	// The header as shipped: the primary already accounted for the
	// statistics, and nothing here touched base or freed.
	*t.Meta = *meta
	t.applyTime = img.Time
	return nil
}
