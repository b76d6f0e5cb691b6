package vfs

import "hash/crc32"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SeqWriter writes a file front to back through WriteAt, buffered, keeping a
// running CRC32C (Castagnoli) of what it wrote while Checksum is true. Backup
// files and WAL archive segments are written with it.
type SeqWriter struct {
	f        File
	off      int64
	buf      []byte
	Sum      uint32 // CRC32C of the bytes written while Checksum was on
	Checksum bool
}

// NewSeqWriter starts writing f at offset off with a 256 KiB buffer.
func NewSeqWriter(f File, off int64) *SeqWriter {
	return &SeqWriter{f: f, off: off, buf: make([]byte, 0, 256<<10)}
}

// Write appends b.
func (w *SeqWriter) Write(b []byte) error {
	if w.Checksum {
		w.Sum = crc32.Update(w.Sum, castagnoli, b)
	}
	if len(w.buf)+len(b) > cap(w.buf) {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if len(b) >= cap(w.buf) {
		if _, err := w.f.WriteAt(b, w.off); err != nil {
			return err
		}
		w.off += int64(len(b))
		return nil
	}
	w.buf = append(w.buf, b...)
	return nil
}

// Flush writes out the buffer.
func (w *SeqWriter) Flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.f.WriteAt(w.buf, w.off); err != nil {
		return err
	}
	w.off += int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}

// Pos is the offset the next byte will be written at.
func (w *SeqWriter) Pos() int64 { return w.off + int64(len(w.buf)) }
