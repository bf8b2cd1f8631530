package iscsi

import (
	"context"
	"slices"
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
// No session may hold more than half of it (its bufferAccount): once R2Ts
// have gone out for a buffer, only the initiator's data, or the end of its
// session, frees it, so an initiator that never sends what was solicited
// keeps what it was given. The share bounds that: a stalled session holds
// at most half the buffer, and every other session's writes go on in the
// other half. A session's request beyond its share waits for the
// session's own buffers to come back, and does not hold up the requests
// of other sessions queued behind it. One exception keeps any write
// possible: a session holding nothing may take one buffer of any size
// (up to Config.MaxDataTransfer) the space allows.
//
// Buffers are kept for reuse rather than left to the garbage collector:
// under a steady write load the target allocates nothing per command, and
// the collector never has megabytes of short-lived buffers to chase. The
// kept buffers count against the limit too; they are let go after
// writeBufferIdle without use, so an idle server gives the memory back.
//
// Invariants (under mu): used + kept <= limit, except for one buffer larger
// than the limit, granted only when nothing else is used or kept; each
// account's used <= limit/2, except for an account holding one buffer
// only; used is the sum of the accounts' used.
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

// bufferAccount is one session's part of the write buffer.
type bufferAccount struct {
	used int64 // bytes granted and not put back; guarded by writeBuffers.mu
}

// bufferWait is one command waiting for its buffer. ch receives the
// buffer exactly once, unless the wait is cancelled first.
type bufferWait struct {
	size int
	acct *bufferAccount
	ch   chan []byte
}

func newWriteBuffers(limit int64, now func() time.Time) *writeBuffers {
	return &writeBuffers{limit: limit, now: now}
}

// classSize is the capacity of the buffers that serve n bytes.
func classSize(n int) int64 { return 1 << (bufClass(n) + minBufShift) }

// tryGet returns a buffer of length n for account a if the space is free
// within a's share and nobody is waiting ahead, else nil.
func (wb *writeBuffers) tryGet(a *bufferAccount, n int) []byte {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	if len(wb.waiting) > 0 {
		return nil
	}
	return wb.takeLocked(a, n)
}

// withinShareLocked reports whether a may take size more bytes: its share
// is half the limit, and an account holding nothing may take one buffer
// of any size. Caller holds mu.
func (wb *writeBuffers) withinShareLocked(a *bufferAccount, size int64) bool {
	return a.used == 0 || a.used+size <= wb.limit/2
}

// takeLocked hands out a buffer of length n to account a if it fits,
// evicting kept buffers of other sizes to make room. Caller holds mu.
func (wb *writeBuffers) takeLocked(a *bufferAccount, n int) []byte {
	c, size := bufClass(n), classSize(n)
	if c >= len(wb.free) || !wb.withinShareLocked(a, size) {
		return nil // c: never asked for, Config.MaxDataTransfer is smaller
	}
	if k := len(wb.free[c]); k > 0 {
		b := wb.free[c][k-1]
		wb.free[c][k-1] = nil
		wb.free[c] = wb.free[c][:k-1]
		wb.kept -= size
		wb.used += size
		a.used += size
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
	a.used += size
	wb.lastUse = wb.now()
	return make([]byte, n, size)
}

// wait queues a request of account a for a buffer of length n behind
// those already waiting. The buffer arrives on w.ch; await gives up on it.
func (wb *writeBuffers) wait(a *bufferAccount, n int) *bufferWait {
	w := &bufferWait{size: n, acct: a, ch: make(chan []byte, 1)}
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
		wb.put(w.acct, b)
	default:
	}
	return nil
}

// grantLocked hands buffers to waiting commands, first come first served,
// while they fit. A request beyond its session's share is passed over:
// it waits for its own session's buffers, which the requests behind it
// must not wait for. Caller holds mu.
func (wb *writeBuffers) grantLocked() {
	for i := 0; i < len(wb.waiting); {
		w := wb.waiting[i]
		if !wb.withinShareLocked(w.acct, classSize(w.size)) {
			i++
			continue
		}
		b := wb.takeLocked(w.acct, w.size)
		if b == nil {
			return // first in line for the space: the rest wait behind it
		}
		wb.waiting = slices.Delete(wb.waiting, i, i+1)
		w.ch <- b
	}
}

// put returns a buffer that account a got from tryGet or await.
func (wb *writeBuffers) put(a *bufferAccount, b []byte) {
	if b == nil {
		return
	}
	c, size := bufClass(cap(b)), int64(cap(b))
	wb.mu.Lock()
	defer wb.mu.Unlock()
	wb.used -= size
	a.used -= size
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
