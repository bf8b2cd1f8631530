package volume

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/volgw/volgw/internal/crc32c"
)

// The journal is the upload buffer: a ring of records laid over the
// upload-buffer disk files taken as one address space. A record's position
// is its LSN (a byte count that only grows) modulo the ring's capacity, so a
// record may wrap around the end or cross from one disk to the next.
//
// Record layout (little endian): magic u32 | kind u16 | pad u16 | lsn u64 |
// epoch u32 | dataLen u32 | volume nonce u64 | offset u64 | length u64 |
// ring ID u64 | crc u32 | pad u32, then dataLen bytes. The CRC covers
// header and data. A record is valid only if its magic, LSN, epoch, ring ID
// and CRC all check, so stale bytes from an earlier lap of the ring, a torn
// append, or a ring that is not the one the superblock describes (a disk
// replaced, re-created or overwritten) end the replay. Rings written before
// the ring ID existed carry 0 there, as their superblocks do.
//
// Writing (group commit). A writer, under its volume's lock, only assigns
// its record an LSN and a place in the current batch (assign): an aligned
// buffer that mirrors the ring from the batch's first record, rounded down
// to a 4 KiB sector, onwards. It copies header and data in after dropping
// the volume lock (fill), then waits until the journal is written past its
// record (wait) and only then acknowledges. Whoever waits while no batch
// is being written becomes the leader and writes the oldest batch with one
// write per contiguous extent of the ring (usually one), while the records
// of later writers gather in the next batch. Batches are written one at a
// time in LSN order and "written" only moves past a batch once all of it
// is in the files, so an acknowledged record never follows a hole: replay,
// which stops at the first invalid record, gets every acknowledged one.
//
// Every batch write covers whole sectors (when every disk is a multiple
// of 4 KiB; otherwise bytes exactly, through the page cache): it starts
// with the bytes already written before its first record in that sector
// (kept in tailSec, so the same bytes are written again) and ends with
// zeros to the next sector boundary, which the next batch overwrites. No
// write is partial within a page (the kernel neither reads nor zeroes the
// rest), and big batches go straight to the disk with O_DIRECT, never
// through fresh page-cache pages (directMin). The format is unchanged: the
// zeros after the last record end the replay like any invalid header, and
// rings written before batches (records at any byte) still replay, and
// appends continue after them. reserve keeps a sector of slack between
// head and tail so that the zeros never reach a record still needed.
//
// Initialisation (ringinit.go). The disks are preallocated; their blocks
// never written are written once with zeros by a background initialiser,
// so that appends do not land on unwritten extents. It zeros only the
// chunk [init.fenceLo, init.fenceHi), claimed under j.mu after every
// record assigned or reserved (and its batch's trailing zeros) and before
// the tail's sector; reserve does not let a reservation reach the fence
// while it is up, and the layout does not change under it. Zeros read as
// no record to replay.
//
// Memory (steady state allocates nothing). A batch takes a buffer of one
// of four sizes (batchMin to batchBytes, by 4×), the size recent batches
// needed (hint: one class up when a batch overflows, one down when one
// used an eighth of it), so a trickle of 4 KiB writes does not hold 4 MiB
// buffers. Written batches go back to a pool, whose buffers, in use or
// free, never add up to more than batchPool; a batch that finds the pool
// full (more than batchPool of records not yet written) gets a buffer of
// its own, left to the collector, as every batch did before the pool; so
// does a record bigger than batchBytes, always. The free buffers, then,
// are at most batchPool bytes: what the busiest moment needed, kept.
//
// Waking (no broadcast). A writer that must wait sleeps on its own
// waiter, in a list ordered by the end LSN it waits for. A leader that
// writes a batch wakes exactly the waiters whose records it wrote (and,
// when it fails, every waiter: each is answered with the error); when it
// leaves, it wakes one waiter (the heir, the oldest not written) to lead
// next. Invariant: whenever no batch is being written and j.mu is free,
// every waiter in the list has an heir woken before it (j.heir) or the
// list is empty, so nobody sleeps while nothing is written for it.
const (
	recMagic  = 0x314a5256 // "VRJ1"
	recHeader = 64

	recWrite = 1
	recZero  = 2

	ringSector = 4096 // the unit of ring writes (and of O_DIRECT alignment)
	// batchBytes is the biggest batch buffer: it bounds one write, not
	// the records waiting (a full batch is queued and another started).
	// batchMin is the smallest; the sizes between go by 4×.
	batchBytes   = 4 << 20
	batchMin     = 64 << 10
	batchClasses = 4
	// batchPool bounds the bytes of pooled batch buffers, in use or free:
	// with 4 MiB batches, one being written, one filling and six queued.
	batchPool = 32 << 20
	// inflightMax bounds the bytes of writes under way (reserve): half
	// the pool, since batches may be half empty (a record that does not
	// fit the rest of a batch starts another).
	inflightMax = batchPool / 2
	// directMin: batches this big or bigger bypass the page cache. Smaller
	// ones (a lone 4 KiB write) are written through it: a direct write
	// waits for the device, a buffered one only for a copy, and Flush
	// pays the device once for many of them.
	directMin = 128 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type record struct {
	kind   uint16
	lsn    uint64
	epoch  uint32
	nonce  uint64
	ring   uint64 // the ring's ID (superblock.ID)
	off    uint64 // byte offset in the volume
	length uint64 // bytes the record covers (== len(data) for writes)
	data   []byte
}

// superblock is the journal's persistent state, kept in the engine's state
// directory (written by rename, so it is never torn).
type superblock struct {
	// ID names this ring: every record carries it, and the engine's ledger
	// (ledger.go) keeps it too, so a superblock or a ring that is not the
	// one the ledger expects is recognised. 0 in rings written before IDs.
	ID      uint64   `json:"id,omitempty"`
	Epoch   uint32   `json:"epoch"`
	BaseLSN uint64   `json:"baseLSN"` // LSN at ring position 0 of this layout
	TailLSN uint64   `json:"tailLSN"` // replay starts here; never past a needed record
	Disks   []string `json:"disks"`   // layout fingerprint: path:size of each disk
}

type ringDisk struct {
	f    *os.File // buffered: replay, small batches, fdatasync
	df   *os.File // O_DIRECT, nil where the file system refuses it
	size int64
	desc string
}

// batch is a run of consecutive records written to the ring together.
type batch struct {
	buf   []byte // sector-aligned in memory; buf[i] is the ring byte of LSN base+i
	base  uint64 // start rounded down to the ring's alignment
	start uint64 // LSN of the first record
	end   uint64 // LSN after the last record assigned to it
	fill  sync.WaitGroup
	class int // buffer size class, -1 for a buffer outside the pool
}

// waiter is a writer asleep until the journal is written up to end (0:
// only until the batch being written is done: to lead, retry or find a
// buffer). The waker takes it out of j.waiters before waking it.
type waiter struct {
	end  uint64
	wake chan struct{} // capacity 1
	heir bool          // woken to lead next (see j.heir)
}

// slot is a record's place in a batch: assigned under the volume lock,
// filled after it.
type slot struct {
	b   *batch
	lsn uint64
}

// ringLayout is what a batch write needs of the journal, copied under
// j.mu: the layout only changes while nothing is being written.
type ringLayout struct {
	disks    []ringDisk
	capacity int64
	baseLSN  uint64
	align    uint64
	direct   bool
}

type journal struct {
	path string // superblock file

	// relMu serializes releases, so tails are persisted in order.
	relMu sync.Mutex

	mu sync.Mutex // guards every field below
	// Invariant: tail <= head and head - tail + reserved <= capacity; bytes
	// in [tail, head) are records some volume may still need.
	disks    []ringDisk
	capacity int64
	sb       superblock
	head     uint64 // next LSN to append
	tail     uint64
	reserved int64         // space promised to writers not yet appended
	space    chan struct{} // closed and replaced whenever space is freed
	syncErr  error         // the first failed fsync, returned ever after
	// synced is the written position as of the last successful sync:
	// every record before it is durable.
	synced uint64

	// spaceWanted: a reserve waits on space (only then is it replaced).
	spaceWanted bool
	// Admission (reserve): writers queued in order of arrival, with
	// their bytes in end; bytes promised to those woken and not yet
	// reserved. Invariant: reserved + promised <= inflightMax, or one
	// write alone is under way.
	admits   []*waiter
	promised int64

	// Group commit (see above). Invariant: tail <= synced <= written <=
	// head (synced may lag tail after a release); the records in
	// [written, head) are in cur and queue, in LSN order.
	cur     *batch   // the batch new records join (nil: none yet)
	queue   []*batch // full batches waiting to be written, oldest first
	written uint64   // every record before it is in the files
	writing bool     // a leader is writing a batch
	syncing bool     // a Flush is syncing the disks
	// Waking (see above): writers asleep, by end; an heir is woken and
	// has not yet taken j.mu; idle waiters to reuse.
	waiters []*waiter
	heir    bool
	idle    []*waiter
	// cond (on mu) is for sync and close only, which wait for a sync or
	// a write to end; condWaiters says whether a write's end must
	// broadcast it.
	cond        *sync.Cond
	condWaiters int
	// Batch pool (see above): written batches by size class, the bytes
	// of pooled buffers (in use or free), the size new batches take, and
	// buffers allocated (for tests).
	free      [batchClasses][]*batch
	pooled    int64
	hint      int
	bufAllocs int64
	// failed is the error of the last batch write when it failed: that
	// batch is kept, first in queue, and written again before any record
	// is added or counted written (a record after a hole would be lost to
	// replay). failSeq counts failures: a writer waiting across one is
	// answered with lastErr, not acknowledged. A disk that comes back
	// (space freed on a full file system) takes writes again.
	failed  error
	lastErr error
	failSeq uint64
	kicked  uint64       // the head when kick last started a background write
	syncs   atomic.Int64 // rounds of fdatasync, for tests and profiles
	closed  bool
	// align is ringSector when every disk's size is a multiple of it (then
	// batches are written in whole sectors), 1 otherwise; direct says
	// every disk has an O_DIRECT descriptor (and align is ringSector).
	align  uint64
	direct bool
	// tailSec is the ring's bytes from written rounded down to align up to
	// written: a batch writes them again at its start. Only the leader
	// touches it. tailCached: that sector is in the page cache (the last
	// batch was written through it, or replay read it).
	tailSec    []byte
	tailCached bool

	// damage says why the superblock or a disk was not found as it was
	// left (missing, unreadable, short): set by openJournal and addDisk,
	// judged by the engine against its ledger after replay.
	damage []damageNote

	// init: the ring's initialiser (ringinit.go): what was never written,
	// and the fence over the chunk being zeroed now.
	init ringInit

	done <-chan struct{} // the engine's: closed when it closes
	// syncSeconds, if set, times each fdatasync (metrics).
	syncSeconds prometheus.Histogram
}

func openJournal(dir string, done <-chan struct{}) (*journal, error) {
	j := &journal{path: filepath.Join(dir, "journal.json"), space: make(chan struct{}), done: done, align: 1, hint: batchMin}
	j.cond = sync.NewCond(&j.mu)
	b, err := os.ReadFile(j.path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &j.sb); err != nil || j.sb.Epoch == 0 {
			// A damaged superblock must not stop the engine: the ring is
			// started afresh and the engine's ledger says which volumes
			// needed what it described (Engine.judgeJournal).
			j.damage = append(j.damage, damageNote{j.path, fmt.Sprintf("is unreadable (%d bytes)", len(b))})
			j.sb = superblock{ID: randomNonce()}
		}
	case os.IsNotExist(err):
		j.damage = append(j.damage, damageNote{j.path, "is missing"})
		j.sb = superblock{ID: randomNonce()}
	default:
		return nil, fmt.Errorf("volume: reading journal superblock: %w", err)
	}
	j.sb.Epoch++
	j.head, j.tail, j.written = j.sb.TailLSN, j.sb.TailLSN, j.sb.TailLSN
	if err := j.writeSB(); err != nil {
		return nil, err
	}
	return j, nil
}

func (j *journal) writeSB() error {
	b, _ := json.Marshal(j.sb)
	return writeFileAtomic(j.path, b)
}

// addDisk extends the ring. The layout may only change while the journal is
// empty (tail == head), because LSN-to-position mapping depends on it; the
// caller drains the journal first when records are pending.
func (j *journal) addDisk(path string, size int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	desc := fmt.Sprintf("%s:%d", path, size)
	for _, d := range j.disks {
		if d.desc == desc {
			return nil
		}
	}
	if size < 4*recHeader+2*BlockSize {
		return fmt.Errorf("volume: upload buffer %s of %d bytes is too small", path, size)
	}
	if st, err := os.Stat(path); err != nil {
		j.damage = append(j.damage, damageNote{path, "is missing (re-created empty)"})
	} else if st.Size() < size {
		j.damage = append(j.damage, damageNote{path, fmt.Sprintf("is %d bytes, short of its %d", st.Size(), size)})
	}
	f, df, err := openRingDisk(path, size)
	if err != nil {
		return err
	}
	j.awaitFenceLocked()
	j.disks = append(j.disks, ringDisk{f: f, df: df, size: size, desc: desc})
	j.capacity += size
	j.setMode()
	return nil
}

// setMode picks how batches are written for the disks there are. j.mu
// held; nothing is being written (the layout is changing).
func (j *journal) setMode() {
	j.align, j.direct = ringSector, len(j.disks) > 0
	for _, d := range j.disks {
		if d.size%ringSector != 0 {
			j.align, j.direct = 1, false
		}
		if d.df == nil {
			j.direct = false
		}
	}
}

// guard is the slack reserve keeps free: a batch's trailing zeros reach
// up to a sector past its last record.
func (j *journal) guard() int64 {
	if j.align > 1 {
		return int64(j.align)
	}
	return 0
}

func (j *journal) layoutLocked() ringLayout {
	return ringLayout{disks: j.disks, capacity: j.capacity, baseLSN: j.sb.BaseLSN, align: j.align, direct: j.direct}
}

func (l *ringLayout) alignDown(lsn uint64) uint64 { return lsn - (lsn-l.baseLSN)%l.align }

func (l *ringLayout) alignUp(lsn uint64) uint64 {
	if r := (lsn - l.baseLSN) % l.align; r != 0 {
		return lsn + l.align - r
	}
	return lsn
}

// known reports whether the disk list matches the superblock's layout, i.e.
// whether the ring holds records written with this layout.
func (j *journal) layoutMatches() bool {
	if len(j.disks) != len(j.sb.Disks) {
		return false
	}
	for i, d := range j.disks {
		if j.sb.Disks[i] != d.desc {
			return false
		}
	}
	return true
}

// relayout adopts the current disk list with the ring starting empty at
// head. Only valid when nothing in the journal is needed.
func (j *journal) relayout() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.awaitFenceLocked()
	j.sb.Disks = j.sb.Disks[:0]
	for _, d := range j.disks {
		j.sb.Disks = append(j.sb.Disks, d.desc)
	}
	j.sb.BaseLSN = j.head
	j.sb.TailLSN = j.head
	j.tail = j.head
	j.tailSec = j.tailSec[:0] // the head is at ring position 0
	return j.writeSB()
}

func (j *journal) ringIO(lsn uint64, p []byte, write bool) error {
	pos := int64((lsn - j.sb.BaseLSN) % uint64(j.capacity))
	return eachRingSpan(j.disks, j.capacity, pos, p, func(d ringDisk, off int64, q []byte) error {
		var err error
		if write {
			_, err = d.f.WriteAt(q, off)
		} else {
			_, err = d.f.ReadAt(q, off)
		}
		if err != nil {
			return fmt.Errorf("volume: journal I/O: %w", err)
		}
		return nil
	})
}

// eachRingSpan splits p, placed at ring position pos (wrapping at
// capacity), into the pieces that fall on one disk each, and calls fn with
// the disk, the offset in its file and the piece, in ring order; it stops
// at the first error.
func eachRingSpan(disks []ringDisk, capacity, pos int64, p []byte, fn func(d ringDisk, off int64, q []byte) error) error {
	for len(p) > 0 {
		off := pos
		var d ringDisk
		for _, d = range disks {
			if off < d.size {
				break
			}
			off -= d.size
		}
		n := min(int64(len(p)), d.size-off)
		if err := fn(d, off, p[:n]); err != nil {
			return err
		}
		p = p[n:]
		pos = (pos + n) % capacity
	}
	return nil
}

func recordSize(dataLen int) int64 { return int64(recHeader + dataLen) }

// reserve waits until n bytes of journal space are free and promises them
// to the caller, who must append or unreserve them. Waiting here, before the
// caller takes any volume lock, is the backpressure: writers block, nothing
// is dropped. pressure is called when the journal is short of space.
//
// It also keeps the writes under way (reserved and not yet unreserved: their
// records are in batches until written) within inflightMax, so that the
// batch pool (batchPool) holds them: past it, writers queue here in order
// of arrival, and each unreserve admits the first ones that fit (a lone
// write of any size is admitted).
func (j *journal) reserve(ctx context.Context, n int64, pressure func()) error {
	woken := false // admitted from the queue: goes before those queued
	for {
		j.mu.Lock()
		if woken {
			j.promised -= n
		}
		if j.capacity == 0 {
			j.mu.Unlock()
			return ErrNoDisks
		}
		if n > j.capacity/2 {
			j.mu.Unlock()
			return fmt.Errorf("volume: record of %d bytes exceeds half the upload buffer", n)
		}
		if (len(j.admits) > 0 && !woken) || !j.flightFitsLocked(n) {
			if err := j.queueLocked(ctx, n, woken); err != nil {
				return err
			}
			woken = true
			continue
		}
		used := int64(j.head-j.tail) + j.reserved
		fits := used+n <= j.capacity-j.guard()
		if fits && j.clearOfFenceLocked(n) {
			j.reserved += n
			over := used+n > j.capacity/2
			j.admitLocked() // those queued behind may fit too
			j.mu.Unlock()
			if over {
				pressure()
			}
			return nil
		}
		// Short of space (cuts free it), or reaching the chunk the ring's
		// initialiser is zeroing (its end frees it: ringinit.go).
		woken = false
		ch := j.space
		j.spaceWanted = true
		if fits {
			j.init.fenceWaits++
		}
		j.mu.Unlock()
		if !fits {
			pressure()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-j.done:
			return ErrClosed
		}
	}
}

func (j *journal) unreserve(n int64) {
	j.mu.Lock()
	j.reserved -= n
	j.spaceFreedLocked()
	j.admitLocked()
	j.mu.Unlock()
}

// flightFitsLocked says whether a write of n bytes may start now: the
// writes under way and those admitted and on their way leave room for
// it within inflightMax, or there are none.
func (j *journal) flightFitsLocked(n int64) bool {
	busy := j.reserved + j.promised
	return busy == 0 || busy+n <= inflightMax
}

// queueLocked waits in the admission queue (at its front when first is
// set: the caller was admitted already) until admitLocked wakes it. j.mu
// held; it returns with j.mu free.
func (j *journal) queueLocked(ctx context.Context, n int64, first bool) error {
	w := j.waiterLocked()
	w.end = uint64(n)
	if first {
		j.admits = slices.Insert(j.admits, 0, w)
	} else {
		j.admits = append(j.admits, w)
	}
	j.mu.Unlock()
	var err error
	select {
	case <-w.wake:
	case <-ctx.Done():
		err = ctx.Err()
	case <-j.done:
		err = ErrClosed
	}
	j.mu.Lock()
	if err != nil {
		if i := slices.Index(j.admits, w); i >= 0 {
			j.admits = slices.Delete(j.admits, i, i+1)
		} else {
			// Admitted meanwhile: give the place to the next.
			<-w.wake
			j.promised -= n
			j.admitLocked()
		}
	}
	j.idle = append(j.idle, w)
	j.mu.Unlock()
	return err
}

// admitLocked wakes the writers at the front of the admission queue that
// fit, promising them their bytes (so that, woken together, they fit
// together). j.mu held.
func (j *journal) admitLocked() {
	for len(j.admits) > 0 && j.flightFitsLocked(int64(j.admits[0].end)) {
		w := j.admits[0]
		j.promised += int64(w.end)
		copy(j.admits, j.admits[1:])
		j.admits[len(j.admits)-1] = nil
		j.admits = j.admits[:len(j.admits)-1]
		w.wake <- struct{}{}
	}
}

// spaceFreedLocked wakes the reserves waiting for space, if any: a
// channel is closed and replaced only then (no allocation per write).
func (j *journal) spaceFreedLocked() {
	if j.spaceWanted {
		close(j.space)
		j.space = make(chan struct{})
		j.spaceWanted = false
	}
}

func (j *journal) capacityBytes() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.capacity
}

// append writes a record into space the caller reserved (and unreserves
// after its last append) and returns its LSN once the record is in the
// ring's files (the page cache or the disk); sync makes it durable.
func (j *journal) append(r *record) (uint64, error) {
	end, err := j.add(r)
	if err != nil {
		return 0, err
	}
	return r.lsn, j.wait(end)
}

// add gives r its LSN (and epoch and ring ID) and copies it into the
// current batch; it returns the LSN after it, for wait. The caller holds
// its volume's lock, so that the LSN order of a volume's records is the
// order they are applied in. Nothing is written yet.
func (j *journal) add(r *record) (end uint64, err error) {
	s, err := j.assign(r)
	if err != nil {
		return 0, err
	}
	j.fill(s, r)
	return r.lsn + uint64(recordSize(len(r.data))), nil
}

// assign gives r its LSN and its place in the current batch, under j.mu.
// The caller must fill the slot whatever happens next: until it does, no
// batch from this one on can be written.
func (j *journal) assign(r *record) (slot, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	defer j.handoffLocked()
	if j.closed {
		return slot{}, ErrClosed
	}
	// While a batch write fails, no record joins the queue (memory stays
	// bounded): the writer retries the failed batch and, if it fails
	// again, gets that error.
	for j.failed != nil {
		if j.closed {
			return slot{}, ErrClosed
		}
		if j.writing {
			j.sleepLocked(0)
			continue
		}
		if err := j.writeNextLocked(); err != nil {
			return slot{}, err
		}
	}
	n := uint64(recordSize(len(r.data)))
	lay := j.layoutLocked()
	if int64(j.head-j.tail)+int64(n) > j.capacity-j.guard() || (j.init.fenceHi != 0 && lay.alignUp(j.head+n) > j.init.fenceLo) {
		panic(fmt.Sprintf("volume: journal append of %d bytes beyond reservation (head %d tail %d capacity %d fence %d)", n, j.head, j.tail, j.capacity, j.init.fenceLo))
	}
	r.lsn, r.epoch, r.ring = j.head, j.sb.Epoch, j.sb.ID
	b := j.cur
	if b == nil || lay.alignUp(j.head+n)-b.base > uint64(len(b.buf)) {
		if b != nil {
			j.queue = append(j.queue, b)
			// It overflowed: batches take the next size up.
			j.hint = max(j.hint, min(batchBytes, 4*len(b.buf)))
		}
		base := lay.alignDown(j.head)
		b = j.newBatchLocked(int(lay.alignUp(j.head+n) - base))
		b.base, b.start, b.end = base, j.head, j.head
		j.cur = b
	}
	b.fill.Add(1)
	j.head += n
	b.end = j.head
	return slot{b: b, lsn: r.lsn}, nil
}

// newBatchLocked returns a batch with a buffer of at least need bytes:
// the smallest free one of the size new batches take (hint) or bigger,
// else a new one within batchPool (dropping free ones of other sizes to
// stay within it), else one outside the pool. j.mu held.
func (j *journal) newBatchLocked(need int) *batch {
	c := 0
	for c < batchClasses && classBytes(c) < max(need, j.hint) {
		c++
	}
	if c == batchClasses {
		// Bigger than any batch (only a record bigger than batchBytes).
		j.bufAllocs++
		return &batch{buf: alignedBuf(need), class: -1}
	}
	for k := c; k < batchClasses; k++ {
		if n := len(j.free[k]); n > 0 {
			b := j.free[k][n-1]
			j.free[k][n-1] = nil
			j.free[k] = j.free[k][:n-1]
			return b
		}
	}
	size := int64(classBytes(c))
	for k := 0; k < c && j.pooled+size > batchPool; k++ {
		for n := len(j.free[k]); n > 0 && j.pooled+size > batchPool; n-- {
			j.free[k][n-1] = nil
			j.free[k] = j.free[k][:n-1]
			j.pooled -= int64(classBytes(k))
		}
	}
	j.bufAllocs++
	if j.pooled+size > batchPool {
		return &batch{buf: alignedBuf(int(size)), class: -1}
	}
	j.pooled += size
	return &batch{buf: alignedBuf(int(size)), class: c}
}

// classBytes is the buffer size of batch size class c.
func classBytes(c int) int { return batchMin << (2 * c) }

// fill copies r (assigned s) into its batch, outside j.mu: the place is
// r's alone, and the batch is not written before every fill is done.
func (j *journal) fill(s slot, r *record) {
	h := s.b.buf[s.lsn-s.b.base:]
	encodeHeader(h[:recHeader], r)
	copy(h[recHeader:], r.data)
	// internal/crc32c: the same CRC-32C as hash/crc32's, about twice as
	// fast on big records (a 1 MiB write's record is checked whole).
	crc := crc32c.Update(crc32c.Checksum(h[:recHeader]), r.data)
	binary.LittleEndian.PutUint32(h[56:], crc)
	s.b.fill.Done()
}

// kick starts writing what was added so far in the background when that
// goes straight to the disk (directMin): the device works while the
// caller goes on (applying the records to the cache) before it waits. A
// small batch is left for wait, whose caller writes it without a
// goroutine switch.
func (j *journal) kick() {
	j.mu.Lock()
	target := j.head
	start := !j.writing && j.direct && j.failed == nil && target-j.written >= directMin && target > j.kicked
	if start {
		j.kicked = target
	}
	j.mu.Unlock()
	if start {
		// Best effort: the writers waiting see any error.
		go func() { _ = j.wait(target) }()
	}
}

// wait returns once every record before end is in the ring's files, or
// with the write error that stopped that. A caller finding no write under
// way writes the oldest batch itself (the leader); the others wait for it
// and, if their record is not written yet, one of them leads next. A
// batch write that fails answers every writer waiting then with its error
// (none of them is acknowledged); the batch is written again by the next
// writer, before anything after it (see failed).
func (j *journal) wait(end uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	defer j.handoffLocked()
	seq := j.failSeq
	for j.written < end {
		if j.failSeq != seq {
			return j.lastErr
		}
		if j.writing {
			j.sleepLocked(end)
			continue
		}
		if err := j.writeNextLocked(); err != nil {
			return err
		}
	}
	return nil
}

// sleepLocked waits, j.mu dropped meanwhile, until a leader wakes the
// caller: because the journal is written up to end (0: because the write
// under way is done) or failed, or to lead next. j.mu held and a batch
// being written (so a leader will wake it).
func (j *journal) sleepLocked(end uint64) {
	w := j.waiterLocked()
	w.end = end
	i := len(j.waiters)
	for i > 0 && j.waiters[i-1].end > end {
		i--
	}
	j.waiters = append(j.waiters, nil)
	copy(j.waiters[i+1:], j.waiters[i:])
	j.waiters[i] = w
	j.mu.Unlock()
	<-w.wake
	j.mu.Lock()
	if w.heir {
		w.heir, j.heir = false, false
	}
	j.idle = append(j.idle, w)
}

// waiterLocked returns an idle waiter.
func (j *journal) waiterLocked() *waiter {
	if n := len(j.idle); n > 0 {
		w := j.idle[n-1]
		j.idle = j.idle[:n-1]
		return w
	}
	return &waiter{wake: make(chan struct{}, 1)}
}

// wakeLocked wakes the first n waiters (taking them out of the list).
func (j *journal) wakeLocked(n int) {
	for _, w := range j.waiters[:n] {
		w.wake <- struct{}{}
	}
	clear(j.waiters[:n])
	j.waiters = append(j.waiters[:0], j.waiters[n:]...)
}

// handoffLocked is called by every writer leaving wait or assign: when
// nothing is being written and nobody is woken to lead, it wakes the
// oldest waiter to (see the invariant above). A writer that leaves while
// a batch is written needs none: that batch's leader does it.
func (j *journal) handoffLocked() {
	if j.writing || j.heir || len(j.waiters) == 0 {
		return
	}
	j.heir = true
	j.waiters[0].heir = true
	j.wakeLocked(1)
}

// writeNextLocked writes the oldest batch not written, dropping j.mu
// meanwhile. j.mu held, no write under way, and written < head. It wakes
// the waiters it wrote for (all of them when it fails); the caller, when
// it leaves rather than lead again, wakes the next leader
// (handoffLocked). On failure the batch goes back to the front of the
// queue.
func (j *journal) writeNextLocked() error {
	var b *batch
	if len(j.queue) > 0 {
		b = j.queue[0]
		copy(j.queue, j.queue[1:])
		j.queue[len(j.queue)-1] = nil
		j.queue = j.queue[:len(j.queue)-1]
	} else {
		b, j.cur = j.cur, nil
		// Not full: when it used an eighth of the size batches take,
		// they take the next size down.
		if used := int(b.end - b.base); j.hint > batchMin && 8*used <= j.hint {
			j.hint /= 4
		}
	}
	j.writing = true
	lay := j.layoutLocked()
	j.mu.Unlock()
	b.fill.Wait()
	err := j.writeBatch(b, &lay)
	j.mu.Lock()
	j.writing = false
	j.direct = j.direct && lay.direct
	if j.condWaiters > 0 {
		j.cond.Broadcast()
	}
	if err != nil {
		j.queue = slices.Insert(j.queue, 0, b)
		j.failed, j.lastErr = err, err
		j.failSeq++
		// Every waiter is answered with the error (or, waiting for a
		// buffer or a retry, tries again).
		j.wakeLocked(len(j.waiters))
		return err
	}
	j.failed = nil
	j.written = b.end
	n := 0
	for n < len(j.waiters) && j.waiters[n].end <= j.written {
		n++
	}
	j.wakeLocked(n)
	if b.class >= 0 {
		j.free[b.class] = append(j.free[b.class], b)
	}
	return nil
}

// writeBatch writes b to the ring, one write per contiguous extent, up to
// the sector boundary after b.end (zeros after it). A direct write starts
// at b.base, writing the bytes before b.start again; a write through the
// page cache starts at b.start when the previous batch went through it
// too (the page is there, whole: nothing is read). The leader alone runs
// it.
func (j *journal) writeBatch(b *batch, lay *ringLayout) error {
	if lay.capacity == 0 {
		return ErrClosed
	}
	pre := b.start - b.base
	if uint64(len(j.tailSec)) != pre {
		panic(fmt.Sprintf("volume: journal batch at %d (aligned %d) but %d bytes kept before it", b.start, b.base, len(j.tailSec)))
	}
	copy(b.buf, j.tailSec)
	n := lay.alignUp(b.end) - b.base
	clear(b.buf[b.end-b.base : n])
	direct := lay.direct && n >= directMin
	from := b.base
	if !direct && j.tailCached {
		from = b.start
	}
	p := b.buf[from-b.base : n]
	pos := int64((from - lay.baseLSN) % uint64(lay.capacity))
	err := eachRingSpan(lay.disks, lay.capacity, pos, p, func(d ringDisk, off int64, q []byte) error {
		var err error
		if direct {
			if _, err = d.df.WriteAt(q, off); err != nil && isDirectRefused(err) {
				// The file system took O_DIRECT at open but not for
				// writes: go on through the page cache.
				direct, lay.direct = false, false
			}
		}
		if !direct {
			_, err = d.f.WriteAt(q, off)
		}
		if err != nil {
			return fmt.Errorf("volume: journal write: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	tl := (b.end - lay.baseLSN) % lay.align
	j.tailSec = append(j.tailSec[:0], b.buf[b.end-tl-b.base:b.end-b.base]...)
	j.tailCached = !direct
	return nil
}

// alignedBuf returns n bytes starting on a sector boundary in memory, as
// O_DIRECT needs.
func alignedBuf(n int) []byte {
	b := make([]byte, n+ringSector)
	off := int(uintptr(unsafe.Pointer(&b[0])) & (ringSector - 1))
	if off != 0 {
		off = ringSector - off
	}
	return b[off : off+n : off+n]
}

func encodeHeader(h []byte, r *record) {
	le := binary.LittleEndian
	le.PutUint32(h[0:], recMagic)
	le.PutUint16(h[4:], r.kind)
	le.PutUint64(h[8:], r.lsn)
	le.PutUint32(h[16:], r.epoch)
	le.PutUint32(h[20:], uint32(len(r.data)))
	le.PutUint64(h[24:], r.nonce)
	le.PutUint64(h[32:], r.off)
	le.PutUint64(h[40:], r.length)
	le.PutUint64(h[48:], r.ring)
	le.PutUint32(h[56:], 0)
}

// sync makes every record written before the call durable: every write
// acknowledged before it (an acknowledgement waits for the write). Calls
// share fdatasyncs: one that finds the records it needs already synced
// returns without a syscall, and one that arrives while a sync is under way
// waits for it and syncs again only if that one started too early. A
// failed sync is sticky: Linux may drop the pages it could not write and
// report success to the next fsync, so after one failure no later Flush may
// claim durability. A failed batch write is returned too.
func (j *journal) sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	target := j.written
	for {
		switch {
		case j.syncErr != nil:
			return j.syncErr
		case j.failed != nil:
			// The ring cannot be written now: say so rather than
			// report a sync that skipped what could not reach it.
			return j.failed
		case j.synced >= target:
			return nil
		case !j.syncing:
			j.syncing = true
			upTo, disks := j.written, j.disks
			j.mu.Unlock()
			j.syncs.Add(1)
			var err error
			began := time.Now()
			for _, d := range disks {
				if err = fdatasyncFile(d.f); err != nil {
					err = fmt.Errorf("volume: journal sync: %w", err)
					break
				}
			}
			if j.syncSeconds != nil && err == nil {
				j.syncSeconds.Observe(time.Since(began).Seconds())
			}
			j.mu.Lock()
			j.syncing = false
			if err != nil {
				j.syncErr = err
			} else {
				j.synced = max(j.synced, upTo)
			}
			j.cond.Broadcast()
			continue
		}
		j.condWaiters++
		j.cond.Wait()
		j.condWaiters--
	}
}

func (j *journal) ringID() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.sb.ID
}

// syncedLSN is the written position as of the last successful sync.
func (j *journal) syncedLSN() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.synced
}

func (j *journal) headLSN() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.head
}

// release moves the tail forward to lsn (records before it are in published
// roots). The new tail is persisted before the space is handed to writers:
// replay starts at the persisted tail, which must never point into space
// that has been overwritten. The persisted tail may lag the true one; replay
// skips records older than each volume's published cut.
func (j *journal) release(lsn uint64) error {
	j.relMu.Lock()
	defer j.relMu.Unlock()
	j.mu.Lock()
	if lsn <= j.tail || lsn > j.head {
		j.mu.Unlock()
		return nil
	}
	sb := j.sb
	sb.TailLSN = lsn
	j.mu.Unlock()
	b, _ := json.Marshal(sb)
	if err := writeFileAtomic(j.path, b); err != nil {
		return err
	}
	j.mu.Lock()
	j.sb.TailLSN = lsn
	j.tail = lsn
	j.spaceFreedLocked()
	j.mu.Unlock()
	return nil
}

func (j *journal) usage() (used, capacity int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return int64(j.head - j.tail), j.capacity
}

// replay calls fn for each valid record from the persisted tail, in LSN
// order, and sets head after the last one. It stops at the first invalid
// record: what follows was never completely appended.
func (j *journal) replay(fn func(*record) error) error {
	// Open is single-threaded while it replays; j.mu is taken only around
	// ring reads, because fn may cut a volume, which reads the journal.
	j.mu.Lock()
	capacity, start, epoch, ring := j.capacity, j.sb.TailLSN, j.sb.Epoch, j.sb.ID
	j.mu.Unlock()
	if capacity == 0 {
		return nil
	}
	read := func(lsn uint64, p []byte) error {
		j.mu.Lock()
		defer j.mu.Unlock()
		return j.ringIO(lsn, p, false)
	}
	lsn := start
	var prevEpoch uint32
	var h [recHeader]byte
	le := binary.LittleEndian
	for lsn-start+recHeader <= uint64(capacity) {
		if err := read(lsn, h[:]); err != nil {
			return err
		}
		r := record{kind: le.Uint16(h[4:]), lsn: le.Uint64(h[8:]), epoch: le.Uint32(h[16:]),
			nonce: le.Uint64(h[24:]), off: le.Uint64(h[32:]), length: le.Uint64(h[40:]), ring: le.Uint64(h[48:])}
		dataLen := le.Uint32(h[20:])
		if le.Uint32(h[0:]) != recMagic || r.lsn != lsn || r.ring != ring || r.epoch >= epoch || r.epoch < prevEpoch ||
			int64(dataLen) > capacity/2 || lsn-start+uint64(recordSize(int(dataLen))) > uint64(capacity) {
			break
		}
		r.data = make([]byte, dataLen)
		if err := read(lsn+recHeader, r.data); err != nil {
			return err
		}
		want := le.Uint32(h[56:])
		le.PutUint32(h[56:], 0)
		if crc32c.Update(crc32c.Checksum(h[:]), r.data) != want {
			break
		}
		if (r.kind == recWrite && r.length != uint64(dataLen)) || (r.kind != recWrite && r.kind != recZero) {
			break
		}
		prevEpoch = r.epoch
		if err := fn(&r); err != nil {
			return err
		}
		lsn += uint64(recordSize(int(dataLen)))
	}
	// Appends go on from the end of the last valid record: the first
	// batch writes the sector it ends in again, so keep that sector's head.
	j.mu.Lock()
	defer j.mu.Unlock()
	j.awaitFenceLocked()
	j.head, j.written = lsn, lsn
	j.init.seen = lsn
	j.tail = start
	lay := j.layoutLocked()
	j.tailSec, j.tailCached = make([]byte, lsn-lay.alignDown(lsn)), true
	return j.ringIO(lsn-uint64(len(j.tailSec)), j.tailSec, false)
}

// restart starts the ring afresh at lsn under a new ID, forgetting every
// record in it: Open does this when the ring is not the one the ledger
// expects (or its superblock was lost). lsn must not be below any
// published root's JournalLSN, or the next replay would skip new records
// as already cut.
func (j *journal) restart(lsn uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.awaitFenceLocked()
	j.sb.ID = randomNonce()
	j.sb.Disks = j.sb.Disks[:0]
	for _, d := range j.disks {
		j.sb.Disks = append(j.sb.Disks, d.desc)
	}
	j.sb.BaseLSN, j.sb.TailLSN = lsn, lsn
	j.head, j.tail, j.synced, j.written = lsn, lsn, lsn, lsn
	j.init.seen = lsn
	j.tailSec = j.tailSec[:0]
	return j.writeSB()
}

// close writes what was assigned (its writers may not wait any more),
// syncs and closes the disks. Later assigns fail with ErrClosed.
func (j *journal) close() error {
	j.mu.Lock()
	j.closed = true
	head := j.head
	j.mu.Unlock()
	first := j.wait(head)
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.writing || j.syncing || j.init.running {
		j.condWaiters++
		j.cond.Wait()
		j.condWaiters--
	}
	for _, d := range j.disks {
		if err := d.f.Sync(); err != nil && first == nil {
			first = err
		}
		if err := d.f.Close(); err != nil && first == nil {
			first = err
		}
		if d.df != nil {
			d.df.Close()
		}
	}
	j.disks = nil
	return first
}

// openRingDisk opens an upload-buffer disk: preallocated to its size (a
// ring write never allocates, nor finds the file system full), with a
// second, O_DIRECT descriptor where the file system allows it.
func openRingDisk(path string, size int64) (f, df *os.File, err error) {
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("volume: opening disk: %w", err)
	}
	if err := preallocate(f, size); err != nil {
		// Not every file system can; a sparse file works, only slower.
		st, err := f.Stat()
		if err == nil && st.Size() < size {
			err = f.Truncate(size)
		}
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("volume: sizing disk %s: %w", path, err)
		}
	}
	return f, openDirect(path), nil
}

func openDiskFile(path string, size int64) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("volume: opening disk: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("volume: opening disk: %w", err)
	}
	if st.Size() < size {
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, fmt.Errorf("volume: sizing disk %s: %w", path, err)
		}
	}
	return f, nil
}

// writeFileAtomic replaces path with data so that a crash leaves either the
// old or the new file, never a torn one.
// writeFileRenamed replaces path with data by rename, without fsync: the
// new content survives a crash of the process (the page cache holds it),
// not necessarily a power loss.
func writeFileRenamed(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("volume: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("volume: writing %s: %w", path, err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("volume: writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("volume: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("volume: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("volume: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("volume: writing %s: %w", path, err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("volume: writing %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("volume: writing %s: %w", path, err)
	}
	return nil
}
