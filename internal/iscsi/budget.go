package iscsi

import (
	"context"
	"sync"
	"time"
)

// writeBuffers is the target's space for solicited Data-Out: every write
// whose data the target must ask for with R2T gathers into a buffer from
// here, and the R2T goes out only once that buffer is granted (RFC 7143
// 10.8: the target solicits data when it is ready to receive it). So the
// write data held by the whole server — gathering, or handed to a logical
// unit and not yet returned — stays within Config.WriteBuffer, however many
// sessions and commands are in flight; a command that finds it full waits,
// in arrival order, without reading a byte of solicited data.
//
// Buffers are kept for reuse rather than left to the garbage collector:
// under a steady write load the target allocates nothing per command, and
// the collector never has megabytes of short-lived buffers to chase. The
// kept buffers count against the limit too; they are let go after
// writeBufferIdle without use, so an idle server gives the memory back.
//
// Invariant (under mu): used + kept <= limit, except for one buffer larger
// than the limit, granted only when nothing else is used or kept.
type writeBuffers struct {
	mu      sync.Mutex
	limit   int64
	used    int64
	kept    int64
	free    [maxBufShift - minBufShift + 1][][]byte
	waiting []*bufferWait
	// lastUse is when a buffer was last granted, for trimming.
	lastUse time.Time
	trim    *time.Timer
	now     func() time.Time
}

// writeBufferIdle is how long kept buffers outlive the last grant.
const writeBufferIdle = 10 * time.Second

// bufferWait is one command waiting for its buffer. ch receives the
// buffer exactly once, unless the wait is cancelled first.
type bufferWait struct {
	size int
	ch   chan []byte
}

func newWriteBuffers(limit int64, now func() time.Time) *writeBuffers {
	return &writeBuffers{limit: limit, now: now}
}

// classSize is the capacity of the buffers that serve n bytes.
func classSize(n int) int64 { return 1 << (bufClass(n) + minBufShift) }

// tryGet returns a buffer of length n if the space is free and nobody is
// waiting ahead, else nil.
func (wb *writeBuffers) tryGet(n int) []byte {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	if len(wb.waiting) > 0 {
		return nil
	}
	return wb.takeLocked(n)
}

// takeLocked hands out a buffer of length n if it fits, evicting kept
// buffers of other sizes to make room. Caller holds mu.
func (wb *writeBuffers) takeLocked(n int) []byte {
	c, size := bufClass(n), classSize(n)
	if c >= len(wb.free) {
		return nil // never asked for: Config.MaxDataTransfer is smaller
	}
	if k := len(wb.free[c]); k > 0 {
		b := wb.free[c][k-1]
		wb.free[c][k-1] = nil
		wb.free[c] = wb.free[c][:k-1]
		wb.kept -= size
		wb.used += size
		wb.lastUse = wb.now()
		return b[:n]
	}
	if wb.used+size > wb.limit && wb.used > 0 {
		return nil
	}
	for i := range wb.free {
		for wb.used+wb.kept+size > wb.limit && len(wb.free[i]) > 0 {
			k := len(wb.free[i])
			wb.free[i][k-1] = nil
			wb.free[i] = wb.free[i][:k-1]
			wb.kept -= 1 << (i + minBufShift)
		}
	}
	wb.used += size
	wb.lastUse = wb.now()
	return make([]byte, n, size)
}

// wait queues a request for a buffer of length n behind those already
// waiting. The buffer arrives on w.ch; cancel gives up on it.
func (wb *writeBuffers) wait(n int) *bufferWait {
	w := &bufferWait{size: n, ch: make(chan []byte, 1)}
	wb.mu.Lock()
	wb.waiting = append(wb.waiting, w)
	wb.grantLocked()
	wb.mu.Unlock()
	return w
}

// await blocks until w's buffer is granted, or done is closed or ctx ends:
// then it returns nil, and a buffer granted meanwhile goes back.
func (wb *writeBuffers) await(ctx context.Context, w *bufferWait, done <-chan struct{}) []byte {
	select {
	case b := <-w.ch:
		return b
	case <-ctx.Done():
	case <-done:
	}
	wb.mu.Lock()
	for i, o := range wb.waiting {
		if o == w {
			wb.waiting = append(wb.waiting[:i], wb.waiting[i+1:]...)
			break
		}
	}
	wb.mu.Unlock()
	select {
	case b := <-w.ch: // granted before it left the queue
		wb.put(b)
	default:
	}
	return nil
}

// grantLocked hands buffers to waiting commands, first come first served,
// while they fit. Caller holds mu.
func (wb *writeBuffers) grantLocked() {
	for len(wb.waiting) > 0 {
		w := wb.waiting[0]
		b := wb.takeLocked(w.size)
		if b == nil {
			return
		}
		wb.waiting[0] = nil
		wb.waiting = wb.waiting[1:]
		w.ch <- b
	}
}

// put returns a buffer from tryGet or await.
func (wb *writeBuffers) put(b []byte) {
	if b == nil {
		return
	}
	c, size := bufClass(cap(b)), int64(cap(b))
	wb.mu.Lock()
	defer wb.mu.Unlock()
	wb.used -= size
	if c < len(wb.free) && size == 1<<(c+minBufShift) && wb.used+wb.kept+size <= wb.limit {
		wb.free[c] = append(wb.free[c], b[:cap(b)])
		wb.kept += size
	}
	wb.grantLocked()
	if wb.used == 0 && wb.kept > 0 {
		if wb.trim == nil {
			wb.trim = time.AfterFunc(writeBufferIdle, wb.trimIdle)
		} else {
			wb.trim.Reset(writeBufferIdle)
		}
	}
}

// trimIdle lets kept buffers go once none has been granted for
// writeBufferIdle.
func (wb *writeBuffers) trimIdle() {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	if wb.used > 0 {
		return // put schedules the next check when they come back
	}
	if rest := writeBufferIdle - wb.now().Sub(wb.lastUse); rest > 0 {
		wb.trim.Reset(rest)
		return
	}
	clear(wb.free[:])
	wb.kept = 0
}

// stats reports the bytes handed out and kept, and the commands waiting.
func (wb *writeBuffers) stats() (used, kept int64, waiting int) {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	return wb.used, wb.kept, len(wb.waiting)
}
