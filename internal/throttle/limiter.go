package throttle

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Limiter paces a stream of bytes to a rate. Its zero value does not
// limit.
//
// It is a token bucket kept as the time at which the bytes taken so far
// will have been sent at the rate ("virtual time", next): a taker of n
// bytes waits until next, moved forward by n/rate. The bucket holds at
// most burst's worth of credit, so an idle spell is not saved up beyond
// it, and the measured rate over a few seconds stays within a few percent
// of the limit. Bytes are taken in chunks (at most chunkBytes, and at most
// a 20th of a second's worth) so that a 512 KiB object is paced smoothly
// and a rate change takes effect within one chunk.
type Limiter struct {
	mu      sync.Mutex
	rate    int64     // bytes per second; 0: no limit
	next    time.Time // when the bytes taken so far are sent at the rate
	changed chan struct{}
	passed  atomic.Int64
	now     func() time.Time
}

const (
	burst      = 100 * time.Millisecond
	chunkBytes = 64 << 10
	minChunk   = 1 << 10
)

// NewLimiter returns a limiter at bytesPerSec (0: no limit).
func NewLimiter(bytesPerSec int64) *Limiter {
	l := &Limiter{}
	l.SetRate(bytesPerSec)
	return l
}

// SetRate changes the rate (bytes per second; 0 or less: no limit). It
// takes effect at once: waiting takers start over at the new rate.
func (l *Limiter) SetRate(bytesPerSec int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	bytesPerSec = max(bytesPerSec, 0)
	if bytesPerSec == l.rate && l.changed != nil {
		return
	}
	l.rate = bytesPerSec
	l.next = time.Time{}
	if l.changed != nil {
		close(l.changed)
	}
	l.changed = make(chan struct{})
}

// Rate returns the rate in bytes per second (0: no limit).
func (l *Limiter) Rate() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rate
}

// Passed returns how many bytes have passed the limiter.
func (l *Limiter) Passed() int64 { return l.passed.Load() }

func (l *Limiter) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

// WaitN waits until n bytes may pass, or ctx ends (its error then; the
// bytes not yet let through are not counted).
func (l *Limiter) WaitN(ctx context.Context, n int) error {
	for n > 0 {
		k, until, changed := l.reserve(n)
		if !until.IsZero() {
			if d := time.Until(until); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-changed:
					// The rate changed: take the chunk again at the new one.
					t.Stop()
					continue
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				}
			}
		}
		l.passed.Add(int64(k))
		n -= k
	}
	return ctx.Err()
}

// reserve takes up to n bytes' worth of the rate and says until when the
// taker must wait (zero: not at all) and which rate change would void it.
func (l *Limiter) reserve(n int) (k int, until time.Time, changed <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rate == 0 {
		return n, time.Time{}, l.changed
	}
	k = min(n, chunkBytes, max(int(l.rate/20), minChunk))
	now := l.clock()
	if floor := now.Add(-burst); l.next.Before(floor) {
		l.next = floor
	}
	l.next = l.next.Add(time.Duration(float64(k) / float64(l.rate) * float64(time.Second)))
	return k, l.next, l.changed
}
