package volume

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Ring initialisation ("eager zeroing"). An upload-buffer disk is
// preallocated (openRingDisk), which on ext4 and XFS leaves unwritten
// extents: reads give zeros, but the first write to a block must also
// convert its extent, and the fdatasync after it commits that conversion
// through the file system's journal. The ring's first lap therefore costs
// about twice what later laps do (a 4 KiB write + fdatasync measured
// 538-644 µs over unwritten extents, 237-388 µs over written ones). The
// initialiser writes every block of the ring once, in the background, so
// that appends land on written blocks, as an "eager zeroed thick" disk does.
//
// What is left to do is asked of the file system, not remembered: at start
// (startInit) each disk's extents are listed (FIEMAP) and the ranges that
// are unwritten, or holes, are pending. A restart finds the work done before
// it already written (or, after a crash that lost the conversions not yet
// committed, unwritten again: done again, harmlessly); nothing is persisted.
// Where the file system cannot list extents (tmpfs, FUSE, other systems)
// there is nothing to do: such rings have no unwritten extents, or no way
// to find them.
//
// Invariant (crash consistency): the initialiser writes zeros only to ring
// bytes at LSNs in [fenceLo, fenceHi), a range it claims under j.mu with
//
//	alignUp(head + reserved) <= fenceLo  and  fenceHi <= alignDown(tail) + capacity
//
// i.e. after every record assigned or reserved and the zeros that end the
// batch holding it (a batch is written up to the sector boundary after its
// last record), and before the sector of the oldest record still needed; reserve refuses a reservation that would
// reach fenceLo until the fence is lifted, and the layout (addDisk,
// relayout, restart) does not change while a fence is up. So no live
// record, nor one being written, is ever overwritten, and zeros read as "no
// record" to replay (magic 0), which stops there exactly as it stops at
// stale bytes of an earlier lap.
//
// Yielding: a chunk is claimed only while the journal is idle, i.e. no
// record was assigned since the last look, none is reserved, and no batch
// write or sync is under way; otherwise the initialiser sleeps initPause
// and looks again. A writer that starts during a chunk waits at most for
// that chunk's write (initChunk bytes, a few ms) and only if its records
// reach the fence. Under a steady load the initialiser hardly runs, and the
// writer initialises the ring itself by writing it, as before; what the
// writer covers is taken off the pending ranges (noteWrittenLocked).
//
// Zeros are written with FALLOC_FL_WRITE_ZEROES where the kernel and device
// can (Linux 6.17+, a device that zeroes without writing), else with
// O_DIRECT writes of initChunk bytes from a zeroed buffer (through the page
// cache where O_DIRECT is refused). When nothing is pending the disks are
// fdatasynced, so that the conversions are committed.
const (
	initChunk = 4 << 20
	initPause = 20 * time.Millisecond
)

// fileSpan is a byte range [off, end) of one disk file.
type fileSpan struct{ off, end int64 }

// ringInit is the initialiser's state; j.mu guards it.
type ringInit struct {
	// pending: ranges of each disk (by ringDisk.desc) not yet written
	// since the extents were listed.
	pending map[string][]fileSpan
	// seen: the head when the writer's progress was last taken off pending.
	seen uint64
	// fenceLo, fenceHi: the LSNs being zeroed now (fenceHi == 0: none).
	fenceLo, fenceHi uint64
	running          bool
	// always: claim chunks even while the journal is busy (tests, and
	// benchmarks of that policy).
	always bool
	// done is closed once nothing is pending (replaced by startInit).
	done chan struct{}
	// bytes: bytes of zeros written (volgw_upload_buffer_initialised_bytes_total).
	bytes int64
	// fenceWaits counts reservations that waited for a chunk's end.
	fenceWaits int64
	log        *slog.Logger
}

// startInit lists what the ring's disks have never had written and starts
// the initialiser for it, if it is not running. The engine calls it once the
// ring's head is known (after replay, or relayout): the fence is placed
// after the head.
func (j *journal) startInit(log *slog.Logger) {
	j.mu.Lock()
	if j.closed || j.capacity == 0 || j.align != ringSector {
		j.mu.Unlock()
		return
	}
	j.init.log = log
	j.init.seen = j.head
	disks := slices.Clone(j.disks)
	j.mu.Unlock()

	pending := map[string][]fileSpan{}
	for _, d := range disks {
		spans, err := unwrittenSpans(d.f, d.size)
		if err != nil {
			log.Debug("volume: upload buffer extents cannot be listed; not initialised", "disk", d.desc, "err", err)
			continue
		}
		if len(spans) > 0 {
			pending[d.desc] = spans
		}
	}

	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return
	}
	j.init.pending = pending
	// The records still needed were written: take them off (on a restart
	// without a reboot their extents may still be unwritten, their pages
	// not yet written back), and what the writer wrote while listing.
	lay := j.layoutLocked()
	j.takeOffLocked(&lay, lay.alignDown(j.tail), lay.alignUp(j.head))
	j.noteWrittenLocked()
	left := pendingBytes(j.init.pending)
	if j.init.done == nil || (left > 0 && isClosedChan(j.init.done)) {
		j.init.done = make(chan struct{})
	}
	if left == 0 {
		closeOnce(j.init.done)
		return
	}
	if j.init.running {
		return
	}
	j.init.running = true
	log.Info("volume: initialising the upload buffer (writing its never-written blocks once, while the journal is idle)",
		"bytes", left, "capacity", j.capacity)
	go j.initialise(left)
}

// initialise writes zeros to the pending ranges, a chunk at a time, while
// the journal is idle, until none is left or the journal closes.
func (j *journal) initialise(total int64) {
	began := time.Now()
	var zeros []byte
	writeZeroes := true // until the kernel says it cannot
	method := "FALLOC_FL_WRITE_ZEROES"
	var written int64
	var lastHead uint64
	j.mu.Lock()
	lastHead = j.head
	for {
		if j.closed {
			break
		}
		j.noteWrittenLocked()
		if len(j.init.pending) == 0 {
			break
		}
		idle := !j.writing && !j.syncing && j.reserved == 0 && len(j.admits) == 0 && j.head == lastHead
		lastHead = j.head
		var d ringDisk
		var span fileSpan
		ok := false
		if idle || j.init.always {
			d, span, ok = j.claimLocked()
		}
		if !ok {
			j.mu.Unlock()
			select {
			case <-time.After(initPause):
			case <-j.done:
			}
			j.mu.Lock()
			continue
		}
		j.mu.Unlock()

		var err error
		if writeZeroes {
			if err = fallocZeroes(d.f, span.off, span.end-span.off); err != nil && isZeroesRefused(err) {
				writeZeroes, err = false, nil
				if d.df != nil {
					method = "O_DIRECT writes of zeros"
				} else {
					method = "writes of zeros through the page cache"
				}
				zeros = alignedBuf(initChunk)
				err = writeZeros(d, span, zeros)
			}
		} else {
			err = writeZeros(d, span, zeros)
		}

		j.mu.Lock()
		j.init.fenceLo, j.init.fenceHi = 0, 0
		j.spaceFreedLocked() // a reserve may wait for the fence
		j.cond.Broadcast()   // and a layout change
		if err != nil {
			j.init.log.Warn("volume: initialising the upload buffer failed; its first lap stays slower", "disk", d.desc, "err", err)
			break
		}
		j.init.pending[d.desc] = subtractSpan(j.init.pending[d.desc], span)
		if len(j.init.pending[d.desc]) == 0 {
			delete(j.init.pending, d.desc)
		}
		j.init.bytes += span.end - span.off
		written += span.end - span.off
	}
	left := pendingBytes(j.init.pending)
	disks := slices.Clone(j.disks)
	closed := j.closed
	log := j.init.log
	j.mu.Unlock()

	var syncErr error
	if !closed && left == 0 {
		// Commit the conversions, so that a restart finds them done.
		for _, d := range disks {
			if err := fdatasyncFile(d.f); err != nil && syncErr == nil {
				syncErr = err
			}
		}
	}
	log.Info("volume: upload buffer initialisation ended", "written", written, "of", total, "left", left,
		"method", method, "seconds", time.Since(began).Seconds(), "syncErr", syncErr)

	j.mu.Lock()
	j.init.running = false
	if left == 0 && j.init.done != nil {
		closeOnce(j.init.done)
	}
	j.cond.Broadcast()
	j.mu.Unlock()
}

// claimLocked picks the next chunk to zero: the first pending bytes in ring
// order after the head (so the writer's next laps find them done first),
// within the free part of the ring, at most initChunk long and on one disk,
// and puts the fence up over it. j.mu held.
func (j *journal) claimLocked() (ringDisk, fileSpan, bool) {
	lay := j.layoutLocked()
	lo := lay.alignUp(j.head + uint64(j.reserved))
	hi := lay.alignDown(j.tail) + uint64(lay.capacity)
	for lsn := lo; lsn < hi; {
		d, off, n := ringSpanAt(&lay, lsn, hi-lsn)
		for _, s := range j.init.pending[d.desc] {
			if s.end <= off || s.off >= off+n {
				continue
			}
			a := max(s.off, off) &^ (ringSector - 1)
			a = max(a, off)
			b := min(s.end, off+n, a+initChunk)
			if r := b % ringSector; r != 0 {
				b = min(b+ringSector-r, off+n)
			}
			j.init.fenceLo = lsn + uint64(a-off)
			j.init.fenceHi = lsn + uint64(b-off)
			return d, fileSpan{a, b}, true
		}
		lsn += uint64(n)
	}
	return ringDisk{}, fileSpan{}, false
}

// ringSpanAt returns the disk holding the ring byte of lsn, its offset
// there, and how many of the next max bytes lie on that disk after it.
func ringSpanAt(lay *ringLayout, lsn, limit uint64) (ringDisk, int64, int64) {
	pos := int64((lsn - lay.baseLSN) % uint64(lay.capacity))
	for _, d := range lay.disks {
		if pos < d.size {
			return d, pos, min(d.size-pos, int64(limit))
		}
		pos -= d.size
	}
	panic(fmt.Sprintf("volume: ring position of LSN %d beyond the disks", lsn))
}

// noteWrittenLocked takes the ring bytes the writer wrote since the last
// note off the pending ranges: they are initialised. j.mu held; called
// before every layout change too (the LSNs are mapped with the layout they
// were written with).
func (j *journal) noteWrittenLocked() {
	if j.init.pending != nil && j.capacity > 0 && j.head > j.init.seen {
		lay := j.layoutLocked()
		j.takeOffLocked(&lay, lay.alignDown(j.init.seen), lay.alignUp(j.head))
	}
	j.init.seen = j.head
}

// takeOffLocked takes the ring bytes of [from, to) off the pending ranges.
func (j *journal) takeOffLocked(lay *ringLayout, from, to uint64) {
	if len(j.init.pending) == 0 || to <= from {
		return
	}
	if to-from > uint64(lay.capacity) {
		from = to - uint64(lay.capacity)
	}
	for lsn := from; lsn < to; {
		d, off, n := ringSpanAt(lay, lsn, to-lsn)
		if p, ok := j.init.pending[d.desc]; ok {
			if p = subtractSpan(p, fileSpan{off, off + n}); len(p) > 0 {
				j.init.pending[d.desc] = p
			} else {
				delete(j.init.pending, d.desc)
			}
		}
		lsn += uint64(n)
	}
}

// awaitFenceLocked waits until no chunk is being zeroed, and notes what the
// writer wrote: the layout is about to change. j.mu held.
func (j *journal) awaitFenceLocked() {
	for j.init.fenceHi != 0 {
		j.condWaiters++
		j.cond.Wait()
		j.condWaiters--
	}
	j.noteWrittenLocked()
}

// clearOfFenceLocked says whether records of n more bytes of reservation,
// and the zeros after the last of them to its sector's end, stay before
// the fence. j.mu held.
func (j *journal) clearOfFenceLocked(n int64) bool {
	if j.init.fenceHi == 0 {
		return true
	}
	lay := j.layoutLocked()
	return lay.alignUp(j.head+uint64(j.reserved+n)) <= j.init.fenceLo
}

// initState reports bytes of zeros written since Open and bytes still
// pending (for metrics).
func (j *journal) initState() (written, left int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.init.bytes, pendingBytes(j.init.pending)
}

// initDone returns a channel closed once nothing is left to initialise (nil
// before startInit).
func (j *journal) initDone() <-chan struct{} {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.init.done
}

func writeZeros(d ringDisk, span fileSpan, zeros []byte) error {
	for off := span.off; off < span.end; {
		n := min(int64(len(zeros)), span.end-off)
		var err error
		if d.df != nil {
			_, err = d.df.WriteAt(zeros[:n], off)
			if err != nil && isDirectRefused(err) {
				d.df = nil // as the journal does: through the page cache
			}
		}
		if d.df == nil {
			_, err = d.f.WriteAt(zeros[:n], off)
		}
		if err != nil {
			return fmt.Errorf("volume: initialising upload buffer: %w", err)
		}
		off += n
	}
	return nil
}

// subtractSpan returns spans (sorted, disjoint) without the bytes of s.
func subtractSpan(spans []fileSpan, s fileSpan) []fileSpan {
	out := spans[:0:0]
	for _, x := range spans {
		if x.end <= s.off || x.off >= s.end {
			out = append(out, x)
			continue
		}
		if x.off < s.off {
			out = append(out, fileSpan{x.off, s.off})
		}
		if x.end > s.end {
			out = append(out, fileSpan{s.end, x.end})
		}
	}
	return out
}

func pendingBytes(p map[string][]fileSpan) int64 {
	var n int64
	for _, spans := range p {
		for _, s := range spans {
			n += s.end - s.off
		}
	}
	return n
}

func isClosedChan(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func closeOnce(c chan struct{}) {
	if !isClosedChan(c) {
		close(c)
	}
}

var (
	descBufferInitialised = prometheus.NewDesc("volgw_upload_buffer_initialised_bytes_total",
		"Upload-buffer bytes written with zeros once, so that the ring's first lap lands on written blocks (since the process started).", nil, nil)
	descBufferUninitialised = prometheus.NewDesc("volgw_upload_buffer_uninitialised_bytes",
		"Upload-buffer bytes never written yet (unwritten extents or holes): the ring's first lap over them is slower.", nil, nil)
)

func describeRingInit(ch chan<- *prometheus.Desc) {
	ch <- descBufferInitialised
	ch <- descBufferUninitialised
}

func (e *Engine) collectRingInit(ch chan<- prometheus.Metric) {
	written, left := e.jr.initState()
	ch <- prometheus.MustNewConstMetric(descBufferInitialised, prometheus.CounterValue, float64(written))
	ch <- prometheus.MustNewConstMetric(descBufferUninitialised, prometheus.GaugeValue, float64(left))
}
