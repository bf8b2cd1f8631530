package volume

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
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
const (
	recMagic  = 0x314a5256 // "VRJ1"
	recHeader = 64

	recWrite = 1
	recZero  = 2
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
	f    *os.File
	size int64
	desc string
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
	// synced is the head as of the last successful sync: every record
	// before it is durable.
	synced uint64

	// damage says why the superblock or a disk was not found as it was
	// left (missing, unreadable, short): set by openJournal and addDisk,
	// judged by the engine against its ledger after replay.
	damage []damageNote

	done <-chan struct{} // the engine's: closed when it closes
}

func openJournal(dir string, done <-chan struct{}) (*journal, error) {
	j := &journal{path: filepath.Join(dir, "journal.json"), space: make(chan struct{}), done: done}
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
	j.head, j.tail = j.sb.TailLSN, j.sb.TailLSN
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
	f, err := openDiskFile(path, size)
	if err != nil {
		return err
	}
	j.disks = append(j.disks, ringDisk{f: f, size: size, desc: desc})
	j.capacity += size
	return nil
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
	j.sb.Disks = j.sb.Disks[:0]
	for _, d := range j.disks {
		j.sb.Disks = append(j.sb.Disks, d.desc)
	}
	j.sb.BaseLSN = j.head
	j.sb.TailLSN = j.head
	j.tail = j.head
	return j.writeSB()
}

func (j *journal) ringIO(lsn uint64, p []byte, write bool) error {
	pos := int64((lsn - j.sb.BaseLSN) % uint64(j.capacity))
	for len(p) > 0 {
		// find the disk holding pos
		off := pos
		var d ringDisk
		for _, d = range j.disks {
			if off < d.size {
				break
			}
			off -= d.size
		}
		n := min(int64(len(p)), d.size-off)
		var err error
		if write {
			_, err = d.f.WriteAt(p[:n], off)
		} else {
			_, err = d.f.ReadAt(p[:n], off)
		}
		if err != nil {
			return fmt.Errorf("volume: journal I/O: %w", err)
		}
		p = p[n:]
		pos = (pos + n) % j.capacity
	}
	return nil
}

func recordSize(dataLen int) int64 { return int64(recHeader + dataLen) }

// reserve waits until n bytes of journal space are free and promises them
// to the caller, who must append or unreserve them. Waiting here, before the
// caller takes any volume lock, is the backpressure: writers block, nothing
// is dropped. pressure is called when the journal is short of space.
func (j *journal) reserve(ctx context.Context, n int64, pressure func()) error {
	for {
		j.mu.Lock()
		if j.capacity == 0 {
			j.mu.Unlock()
			return ErrNoDisks
		}
		if n > j.capacity/2 {
			j.mu.Unlock()
			return fmt.Errorf("volume: record of %d bytes exceeds half the upload buffer", n)
		}
		used := int64(j.head-j.tail) + j.reserved
		if used+n <= j.capacity {
			j.reserved += n
			over := used+n > j.capacity/2
			j.mu.Unlock()
			if over {
				pressure()
			}
			return nil
		}
		ch := j.space
		j.mu.Unlock()
		pressure()
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
	close(j.space)
	j.space = make(chan struct{})
	j.mu.Unlock()
}

func (j *journal) capacityBytes() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.capacity
}

// append writes a record into space the caller reserved (and unreserves
// after its last append) and returns its LSN. The write reaches the file
// (the page cache) before append returns; sync makes it durable.
func (j *journal) append(r *record) (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := recordSize(len(r.data))
	if int64(j.head-j.tail)+n > j.capacity {
		panic(fmt.Sprintf("volume: journal append of %d bytes beyond reservation (head %d tail %d capacity %d)", n, j.head, j.tail, j.capacity))
	}
	r.lsn = j.head
	r.epoch = j.sb.Epoch
	r.ring = j.sb.ID
	var h [recHeader]byte
	encodeHeader(h[:], r)
	crc := crc32.Update(crc32.Checksum(h[:], castagnoli), castagnoli, r.data)
	binary.LittleEndian.PutUint32(h[56:], crc)
	if err := j.ringIO(r.lsn, h[:], true); err != nil {
		return 0, err
	}
	if err := j.ringIO(r.lsn+recHeader, r.data, true); err != nil {
		return 0, err
	}
	j.head += uint64(n)
	return r.lsn, nil
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

// sync makes every appended record durable. A failed fsync is sticky:
// Linux may drop the pages it could not write and report success to the
// next fsync, so after one failure no later Flush may claim durability.
func (j *journal) sync() error {
	j.mu.Lock()
	disks, failed, head := j.disks, j.syncErr, j.head
	j.mu.Unlock()
	if failed != nil {
		return failed
	}
	for _, d := range disks {
		if err := d.f.Sync(); err != nil {
			err = fmt.Errorf("volume: journal sync: %w", err)
			j.mu.Lock()
			j.syncErr = err
			j.mu.Unlock()
			return err
		}
	}
	j.mu.Lock()
	j.synced = max(j.synced, head)
	j.mu.Unlock()
	return nil
}

func (j *journal) ringID() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.sb.ID
}

// syncedLSN is the head as of the last successful sync.
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
	close(j.space)
	j.space = make(chan struct{})
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
		if crc32.Update(crc32.Checksum(h[:], castagnoli), castagnoli, r.data) != want {
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
	j.mu.Lock()
	j.head = lsn
	j.tail = start
	j.mu.Unlock()
	return nil
}

// restart starts the ring afresh at lsn under a new ID, forgetting every
// record in it: Open does this when the ring is not the one the ledger
// expects (or its superblock was lost). lsn must not be below any
// published root's JournalLSN, or the next replay would skip new records
// as already cut.
func (j *journal) restart(lsn uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.sb.ID = randomNonce()
	j.sb.Disks = j.sb.Disks[:0]
	for _, d := range j.disks {
		j.sb.Disks = append(j.sb.Disks, d.desc)
	}
	j.sb.BaseLSN, j.sb.TailLSN = lsn, lsn
	j.head, j.tail, j.synced = lsn, lsn, lsn
	return j.writeSB()
}

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	var first error
	for _, d := range j.disks {
		if err := d.f.Sync(); err != nil && first == nil {
			first = err
		}
		if err := d.f.Close(); err != nil && first == nil {
			first = err
		}
	}
	j.disks = nil
	return first
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
