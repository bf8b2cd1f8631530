package iscsi

import (
	"io"
	"net"
)

// batchWriter gathers outgoing PDUs and sends them with as few system
// calls as it can: headers and small data segments are copied into one
// arena, large data segments are referenced in place, and Flush hands the
// whole list to writev (net.Buffers). Read data thus reaches the socket
// without being copied.
//
// Slices passed to writeRef must stay unchanged until the next Flush.
type batchWriter struct {
	w     io.Writer
	arena []byte      // copied bytes; never grows past its capacity
	mark  int         // arena bytes not yet listed in vecs
	vecs  net.Buffers // the batch, in order
	// sending is the copy of vecs that writev consumes.
	sending net.Buffers
	size    int // bytes in the batch
	// recycle holds pooled buffers the batch references, returned to the
	// pool once the batch is sent.
	recycle [][]byte
}

const (
	// refThreshold is the data segment size from which data is referenced
	// rather than copied.
	refThreshold = 16 << 10
	// maxBatch bounds a batch, so a long Data-In train is sent as it is
	// built rather than held entire.
	maxBatch = 4 << 20
)

func newBatchWriter(w io.Writer, arenaSize int) *batchWriter {
	return &batchWriter{w: w, arena: make([]byte, 0, arenaSize)}
}

// copyIn copies p, which is no longer than the arena, into the batch.
// It never keeps p, so callers may pass memory on their stack.
func (b *batchWriter) copyIn(p []byte) error {
	if len(b.arena)+len(p) > cap(b.arena) {
		if err := b.Flush(); err != nil {
			return err
		}
	}
	b.arena = append(b.arena, p...)
	b.size += len(p)
	return nil
}

// writeRef adds p to the batch without copying it.
func (b *batchWriter) writeRef(p []byte) error {
	if b.mark < len(b.arena) {
		b.vecs = append(b.vecs, b.arena[b.mark:])
		b.mark = len(b.arena)
	}
	b.vecs = append(b.vecs, p)
	b.size += len(p)
	if b.size >= maxBatch {
		return b.Flush()
	}
	return nil
}

// Flush sends the batch.
func (b *batchWriter) Flush() error {
	if b.mark < len(b.arena) {
		b.vecs = append(b.vecs, b.arena[b.mark:])
	}
	var err error
	if len(b.vecs) == 1 {
		_, err = b.w.Write(b.vecs[0])
	} else if len(b.vecs) > 1 {
		// WriteTo consumes the slice header it is given: hand it a copy
		// kept in the writer, since a local one would escape to the heap.
		b.sending = b.vecs
		_, err = b.sending.WriteTo(b.w)
		b.sending = nil
	}
	if err == nil {
		// On error the connection is done for; the buffers are left to
		// the garbage collector, since a failed writev may still hold them.
		for _, r := range b.recycle {
			putBuf(r)
		}
	}
	clear(b.recycle)
	b.recycle = b.recycle[:0]
	clear(b.vecs) // drop references to sent data
	b.vecs = b.vecs[:0]
	b.arena = b.arena[:0]
	b.mark = 0
	b.size = 0
	return err
}

// recycleAfterFlush returns buf to the buffer pool once the batch that
// references it has been sent.
func (b *batchWriter) recycleAfterFlush(buf []byte) {
	b.recycle = append(b.recycle, buf)
}

// Buffered reports whether anything waits for Flush.
func (b *batchWriter) Buffered() bool { return b.size > 0 }
