package volume

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestJournalReplayStopsAtTornRecord: replay returns every record up to the
// first one whose CRC fails (a torn append), and nothing after it, even when
// the ring has wrapped and older laps' records are still on disk.
func TestJournalReplayStopsAtTornRecord(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "buf.img")
	const size = 4*recHeader + 2*BlockSize // the smallest ring
	open := func() *journal {
		j, err := openJournal(dir, make(chan struct{}))
		if err != nil {
			t.Fatal(err)
		}
		if err := j.addDisk(disk, size); err != nil {
			t.Fatal(err)
		}
		if !j.layoutMatches() {
			if err := j.relayout(); err != nil {
				t.Fatal(err)
			}
		}
		return j
	}
	j := open()
	if err := j.replay(func(*record) error { return nil }); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var lsns []uint64
	appendRec := func(fill byte) {
		r := &record{kind: recWrite, nonce: 7, off: 0, length: 100 << 10, data: bytes.Repeat([]byte{fill}, 100<<10)}
		if err := j.reserve(ctx, recordSize(len(r.data)), func() {}); err != nil {
			t.Fatal(err)
		}
		lsn, err := j.append(r)
		if err != nil {
			t.Fatal(err)
		}
		j.unreserve(recordSize(len(r.data)))
		lsns = append(lsns, lsn)
	}
	// Lap the ring several times, releasing as we go.
	for i := range 30 {
		appendRec(byte(i))
		if err := j.release(j.headLSN()); err != nil { // all uploaded
			t.Fatal(err)
		}
	}
	for i := range 3 {
		appendRec(byte(100 + i))
	}
	if err := j.sync(); err != nil {
		t.Fatal(err)
	}
	// Tear the middle one of the last three: flip a byte of its data.
	torn := lsns[len(lsns)-2]
	pos := int64((torn + recHeader + 10 - j.sb.BaseLSN) % uint64(j.capacity))
	j.close()
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := f.ReadAt(b[:], pos); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b[:], pos); err != nil {
		t.Fatal(err)
	}
	f.Close()

	j = open()
	defer j.close()
	var got []byte
	if err := j.replay(func(r *record) error {
		got = append(got, r.data[0])
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte{100}) {
		t.Fatalf("replayed records with fills %v, want only [100]", got)
	}
	if j.headLSN() != torn {
		t.Fatalf("head after replay %d, want the torn record's LSN %d", j.headLSN(), torn)
	}
}

// TestJournalRejectsAnotherRing: a ring whose disk was replaced by another
// ring's (another gateway's, or an older copy written under another ID)
// replays nothing of it, even where LSNs and epochs line up; records
// written before ring IDs existed (ID 0) still replay under a superblock
// without one.
func TestJournalRejectsAnotherRing(t *testing.T) {
	const size = 4*recHeader + 2*BlockSize
	ctx := context.Background()
	open := func(dir string) *journal {
		j, err := openJournal(dir, make(chan struct{}))
		if err != nil {
			t.Fatal(err)
		}
		if err := j.addDisk(filepath.Join(dir, "buf.img"), size); err != nil {
			t.Fatal(err)
		}
		if !j.layoutMatches() {
			if err := j.relayout(); err != nil {
				t.Fatal(err)
			}
		}
		return j
	}
	fill := func(j *journal, n int) {
		for i := range n {
			r := &record{kind: recWrite, nonce: 7, length: 4096, data: bytes.Repeat([]byte{byte(i + 1)}, 4096)}
			if err := j.reserve(ctx, recordSize(len(r.data)), func() {}); err != nil {
				t.Fatal(err)
			}
			if _, err := j.append(r); err != nil {
				t.Fatal(err)
			}
			j.unreserve(recordSize(len(r.data)))
		}
		if err := j.sync(); err != nil {
			t.Fatal(err)
		}
	}
	count := func(j *journal) int {
		n := 0
		if err := j.replay(func(*record) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	a, b := t.TempDir(), t.TempDir()
	ja, jb := open(a), open(b)
	fill(jb, 5) // same LSNs and epoch as ring a would use
	ja.close()
	jb.close()
	disk, err := os.ReadFile(filepath.Join(b, "buf.img"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a, "buf.img"), disk, 0o600); err != nil {
		t.Fatal(err)
	}
	ja = open(a)
	if n := count(ja); n != 0 {
		t.Fatalf("ring a replayed %d records of ring b", n)
	}
	ja.close()
	jb = open(b)
	if n := count(jb); n != 5 {
		t.Fatalf("ring b replayed %d of its 5 records", n)
	}
	jb.close()

	// A superblock written before ring IDs: its ring replays (records
	// carry 0 where the ID now is).
	c := t.TempDir()
	jc := open(c)
	jc.mu.Lock()
	jc.sb.ID = 0
	err = jc.writeSB()
	jc.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	fill(jc, 3)
	jc.close()
	sb, err := os.ReadFile(filepath.Join(c, "journal.json"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sb, []byte(`"id"`)) {
		t.Fatalf("an ID-less superblock is written with an id: %s", sb)
	}
	jc = open(c)
	defer jc.close()
	if n := count(jc); n != 3 {
		t.Fatalf("a ring without ID replayed %d of its 3 records", n)
	}
}

// Ring modes the batch tests run in: "direct" (every disk a multiple of
// 4 KiB, O_DIRECT for big batches; skipped where the file system refuses
// O_DIRECT, e.g. tmpfs), "buffered" (the same layout through the page
// cache: what such file systems get) and "unaligned" (a disk size that is
// not a multiple of 4 KiB: bytes written exactly, through the page cache).
var journalModes = []string{"direct", "buffered", "unaligned"}

func journalSizes(mode string, sizes ...int64) []int64 {
	out := append([]int64(nil), sizes...)
	if mode == "unaligned" {
		out[len(out)-1] += 1000
	}
	return out
}

// openModeJournal opens (or reopens) the journal in dir over disks of the
// given sizes, in mode.
func openModeJournal(t *testing.T, dir, mode string, sizes []int64) *journal {
	t.Helper()
	j, err := openJournal(dir, make(chan struct{}))
	if err != nil {
		t.Fatal(err)
	}
	for i, size := range sizes {
		if err := j.addDisk(filepath.Join(dir, fmt.Sprintf("buf%d.img", i)), size); err != nil {
			t.Fatal(err)
		}
	}
	if !j.layoutMatches() {
		if err := j.relayout(); err != nil {
			t.Fatal(err)
		}
	}
	switch mode {
	case "direct":
		if !j.direct {
			j.close()
			t.Skip("the file system here refuses O_DIRECT")
		}
	case "buffered":
		j.direct = false
	case "unaligned":
		if j.align != 1 || j.direct {
			t.Fatalf("a ring of %v is aligned (%d) or direct (%v)", sizes, j.align, j.direct)
		}
	}
	return j
}

// patterned is record id's data: n bytes no other id has at the same place.
func patterned(id, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(id*131 + i*7 + i>>8)
	}
	return p
}

func appendPatterned(t testing.TB, j *journal, id, n int) uint64 {
	r := &record{kind: recWrite, nonce: 7, off: uint64(id) * 512, length: uint64(n), data: patterned(id, n)}
	if n == 0 {
		r.kind, r.length = recZero, 512
	}
	if err := j.reserve(context.Background(), recordSize(n), func() {}); err != nil {
		t.Fatal(err)
	}
	defer j.unreserve(recordSize(n))
	lsn, err := j.append(r)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// replayedIDs replays j and checks every record's data against its id.
func replayedIDs(t *testing.T, j *journal) []int {
	t.Helper()
	var ids []int
	if err := j.replay(func(r *record) error {
		id := int(r.off / 512)
		if r.kind == recWrite && !bytes.Equal(r.data, patterned(id, len(r.data))) {
			t.Fatalf("record %d at LSN %d replays with other data", id, r.lsn)
		}
		ids = append(ids, id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ids
}

// ringBytes reads n bytes of the ring from lsn through the page cache.
func ringBytes(t *testing.T, j *journal, lsn uint64, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.ringIO(lsn, p, false); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestJournalBatchesWholeSectors: in every mode, records of every size
// (zero records, small ones in one batch each, big ones written directly)
// lap a two-disk ring several times; after each append the ring holds
// zeros from the head to the next sector boundary (the batch was written
// whole, and nothing stale follows the last record), and a reopened
// journal replays exactly the records not released, then appends after
// them and replays those too.
func TestJournalBatchesWholeSectors(t *testing.T) {
	for _, mode := range journalModes {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			sizes := journalSizes(mode, 2<<20, 3<<20)
			j := openModeJournal(t, dir, mode, sizes)
			if err := j.replay(func(*record) error { return nil }); err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			var kept []int
			id := 0
			for round := 0; j.headLSN()-j.sb.BaseLSN < 2*uint64(j.capacity); round++ {
				var n int
				switch round % 4 {
				case 0:
					n = 0 // a zero record: a header alone
				case 1:
					n = 512 * (1 + rng.IntN(16))
				case 2:
					n = 4096
				default:
					n = 512 * (256 + rng.IntN(768)) // 128 KiB to 512 KiB: direct
				}
				if int64(recordSize(n))+j.guard() > j.capacity-int64(j.headLSN()-j.tail) {
					if err := j.release(j.headLSN()); err != nil {
						t.Fatal(err)
					}
					kept = kept[:0]
				}
				lsn := appendPatterned(t, j, id, n)
				kept = append(kept, id)
				id++
				head := j.headLSN()
				if head != lsn+uint64(recordSize(n)) || j.written != head {
					t.Fatalf("after a record of %d bytes at %d: head %d, written %d", n, lsn, head, j.written)
				}
				if j.align > 1 {
					if pad := (j.align - (head-j.sb.BaseLSN)%j.align) % j.align; pad > 0 {
						if b := ringBytes(t, j, head, int(pad)); !bytes.Equal(b, make([]byte, pad)) {
							t.Fatalf("the %d bytes after the head at %d are not zeros", pad, head)
						}
					}
				}
			}
			head := j.headLSN()
			if err := j.close(); err != nil {
				t.Fatal(err)
			}
			j = openModeJournal(t, dir, mode, sizes)
			if got := replayedIDs(t, j); !slices.Equal(got, kept) {
				t.Fatalf("replayed %v, want %v", got, kept)
			}
			if j.headLSN() != head {
				t.Fatalf("head after replay %d, want %d", j.headLSN(), head)
			}
			// Append after a replayed head that is not on a sector
			// boundary: the sector's first bytes are written again, intact.
			for _, n := range []int{100 * 512, 300 << 10} {
				appendPatterned(t, j, id, n)
				kept = append(kept, id)
				id++
			}
			j.close()
			j = openModeJournal(t, dir, mode, sizes)
			defer j.close()
			if got := replayedIDs(t, j); !slices.Equal(got, kept) {
				t.Fatalf("after appending past a replayed head: replayed %v, want %v", got, kept)
			}
		})
	}
}

// TestJournalReplaysUnbatchedRing: a ring written before batches (header
// and data written apart, records at any byte, stale bytes from another
// lap right after the last one) replays whole, and appends continue after
// its last record, in every mode.
func TestJournalReplaysUnbatchedRing(t *testing.T) {
	for _, mode := range journalModes {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			sizes := journalSizes(mode, 2<<20)
			j := openModeJournal(t, dir, mode, sizes)
			if err := j.replay(func(*record) error { return nil }); err != nil {
				t.Fatal(err)
			}
			// Stale bytes everywhere, as an earlier lap leaves them.
			stale := make([]byte, j.capacity)
			for i := range stale {
				stale[i] = byte(i * 13)
			}
			j.mu.Lock()
			if err := j.ringIO(j.head, stale, true); err != nil {
				t.Fatal(err)
			}
			// The old append: header, then data, each its own write.
			lsn := j.head
			var kept []int
			for id, n := range []int{4096, 512, 100 << 10, 0, 8192, 3 * 512} {
				r := &record{kind: recWrite, lsn: lsn, epoch: j.sb.Epoch, nonce: 7, ring: j.sb.ID, off: uint64(id) * 512, length: uint64(n), data: patterned(id, n)}
				if n == 0 {
					r.kind, r.length = recZero, 512
				}
				var h [recHeader]byte
				encodeHeader(h[:], r)
				binary.LittleEndian.PutUint32(h[56:], crc32.Update(crc32.Checksum(h[:], castagnoli), castagnoli, r.data))
				if err := j.ringIO(lsn, h[:], true); err != nil {
					t.Fatal(err)
				}
				if err := j.ringIO(lsn+recHeader, r.data, true); err != nil {
					t.Fatal(err)
				}
				lsn += uint64(recordSize(n))
				kept = append(kept, id)
			}
			j.mu.Unlock()
			j.close()

			j = openModeJournal(t, dir, mode, sizes)
			if got := replayedIDs(t, j); !slices.Equal(got, kept) {
				t.Fatalf("replayed %v of an unbatched ring, want %v", got, kept)
			}
			if j.headLSN() != lsn {
				t.Fatalf("head after replay %d, want %d", j.headLSN(), lsn)
			}
			for id, n := range []int{6: 4096, 7: 200 << 10, 8: 0} {
				if id >= 6 {
					appendPatterned(t, j, id, n)
					kept = append(kept, id)
				}
			}
			j.close()
			j = openModeJournal(t, dir, mode, sizes)
			defer j.close()
			if got := replayedIDs(t, j); !slices.Equal(got, kept) {
				t.Fatalf("after appending to an unbatched ring: replayed %v, want %v", got, kept)
			}
		})
	}
}

// validEnd reads the ring's files as a crash would leave them at this
// instant and returns the LSN after the last valid record from the tail,
// as replay would find it; it runs beside the journal's writers.
func validEnd(t *testing.T, j *journal) uint64 {
	j.mu.Lock()
	disks, capacity, base, ring, epoch, lsn := j.disks, j.capacity, j.sb.BaseLSN, j.sb.ID, j.sb.Epoch, j.tail
	j.mu.Unlock()
	read := func(at uint64, p []byte) {
		pos := int64((at - base) % uint64(capacity))
		for len(p) > 0 {
			off, i := pos, 0
			for off >= disks[i].size {
				off -= disks[i].size
				i++
			}
			n := min(int64(len(p)), disks[i].size-off)
			if _, err := disks[i].f.ReadAt(p[:n], off); err != nil {
				t.Error(err)
				return
			}
			p, pos = p[n:], (pos+n)%capacity
		}
	}
	le := binary.LittleEndian
	var h [recHeader]byte
	for {
		read(lsn, h[:])
		n := le.Uint32(h[20:])
		if le.Uint32(h[0:]) != recMagic || le.Uint64(h[8:]) != lsn || le.Uint64(h[48:]) != ring || le.Uint32(h[16:]) != epoch || int64(n) > capacity/2 {
			return lsn
		}
		data := make([]byte, n)
		read(lsn+recHeader, data)
		want := le.Uint32(h[56:])
		le.PutUint32(h[56:], 0)
		if crc32.Update(crc32.Checksum(h[:], castagnoli), castagnoli, data) != want {
			return lsn
		}
		lsn += uint64(recordSize(int(n)))
	}
}

// TestJournalGroupCommitNoHole: writers append at once (group commit
// gathers their records into shared batches, small ones through the page
// cache, big ones directly) while a checker reads the ring's files over
// and over as a crash would leave them: the valid records always reach
// past every record acknowledged before the look (an acknowledged record
// never follows one not yet written). At a random instant the files are
// also copied, and replaying the copy gives every record acknowledged
// before it.
// ackedRecords is what appendConcurrently's writers have had acknowledged:
// each record's LSN by its id, and the end of the furthest.
type ackedRecords struct {
	mu  sync.Mutex
	lsn map[int]uint64
	end uint64
}

// snapshot returns a copy of the acknowledged records' LSNs and their end.
func (a *ackedRecords) snapshot() (map[int]uint64, uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.lsn), a.end
}

// appendConcurrently starts writers goroutines, each appending each
// patterned records (appendPatterned, ids w*each+i) of 0-8 sectors of 512
// bytes, or one time in bigOneIn of 100 to 100+bigSpan, its generator
// seeded with (seed, w); pause, if set, runs after each record. It returns
// what is acknowledged as it goes and a wait for the writers to end.
func appendConcurrently(t *testing.T, j *journal, writers, each int, seed uint64, bigOneIn, bigSpan int, pause func(i int, rng *rand.Rand)) (*ackedRecords, func()) {
	acked := &ackedRecords{lsn: map[int]uint64{}}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := range each {
				id := w*each + i
				n := 512 * rng.IntN(9)
				if rng.IntN(bigOneIn) == 0 {
					n = 512 * (100 + rng.IntN(bigSpan))
				}
				lsn := appendPatterned(t, j, id, n)
				acked.mu.Lock()
				acked.lsn[id] = lsn
				acked.end = max(acked.end, lsn+uint64(recordSize(n)))
				acked.mu.Unlock()
				if pause != nil {
					pause(i, rng)
				}
			}
		})
	}
	return acked, wg.Wait
}

func TestJournalGroupCommitNoHole(t *testing.T) {
	for _, mode := range journalModes {
		t.Run(mode, func(t *testing.T) {
			for round := range 4 {
				dir := t.TempDir()
				sizes := journalSizes(mode, 8<<20, 8<<20)
				j := openModeJournal(t, dir, mode, sizes)
				if err := j.replay(func(*record) error { return nil }); err != nil {
					t.Fatal(err)
				}
				acked, wait := appendConcurrently(t, j, 6, 40, uint64(round), 5, 400, nil)
				stop := make(chan struct{})
				checked := make(chan int)
				go func() {
					looks := 0
					defer func() { checked <- looks }()
					for {
						select {
						case <-stop:
							return
						default:
						}
						_, want := acked.snapshot()
						if got := validEnd(t, j); got < want {
							t.Errorf("round %d: records are acknowledged up to %d but the ring's valid records end at %d", round, want, got)
							return
						}
						looks++
					}
				}()
				// The crash: note what was acknowledged, then copy the disks.
				time.Sleep(time.Duration(rand.IntN(40000)) * time.Microsecond)
				before, _ := acked.snapshot()
				var copies [][]byte
				for i := range sizes {
					b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("buf%d.img", i)))
					if err != nil {
						t.Fatal(err)
					}
					copies = append(copies, b)
				}
				wait()
				close(stop)
				if looks := <-checked; looks == 0 && !t.Failed() {
					t.Logf("round %d: the checker had no time to look", round)
				}
				j.close()
				if t.Failed() {
					return
				}
				for i, b := range copies {
					if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("buf%d.img", i)), b, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				j = openModeJournal(t, dir, mode, sizes)
				got := map[int]bool{}
				for _, id := range replayedIDs(t, j) {
					got[id] = true
				}
				j.close()
				for id := range before {
					if !got[id] {
						t.Fatalf("round %d: record %d was acknowledged before the crash and is not replayed (%d of %d acknowledged ones are)", round, id, len(got), len(before))
					}
				}
			}
		})
	}
}

// TestJournalSyncErrorSticks: once an fdatasync failed, sync fails ever
// after, even when the disk works again (Linux may have dropped the pages
// it could not write); a failed batch write is not acknowledged, and is
// written again, before anything after it, once the disk takes writes.
func TestJournalSyncErrorSticks(t *testing.T) {
	for _, mode := range journalModes {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			j := openModeJournal(t, dir, mode, journalSizes(mode, 2<<20))
			defer j.close()
			if err := j.replay(func(*record) error { return nil }); err != nil {
				t.Fatal(err)
			}
			appendPatterned(t, j, 1, 4096)
			broken, err := os.Open(filepath.Join(dir, "buf0.img"))
			if err != nil {
				t.Fatal(err)
			}
			broken.Close() // every call on it fails
			swap := func(f, df *os.File) (*os.File, *os.File) {
				j.mu.Lock()
				defer j.mu.Unlock()
				d := &j.disks[0]
				of, odf := d.f, d.df
				d.f = f
				if d.df != nil {
					d.df = df
				}
				return of, odf
			}
			f, df := swap(broken, broken)
			if err := j.sync(); err == nil {
				t.Fatal("sync on a failing disk succeeded")
			}
			swap(f, df)
			appendPatterned(t, j, 2, 4096)
			if err := j.sync(); err == nil {
				t.Fatal("sync succeeded after an earlier sync failed")
			}

			swap(broken, broken)
			r := &record{kind: recWrite, nonce: 7, off: 512, length: 300 << 10, data: patterned(1, 300<<10)}
			if _, err := j.append(r); err == nil {
				t.Fatal("append on a failing disk succeeded")
			}
			swap(f, df)
			// The disk works again (space freed): the failed batch is
			// written first, then the new record, with no hole between.
			r2 := &record{kind: recWrite, nonce: 7, off: 1 << 20, length: 4096, data: patterned(3, 4096)}
			if _, err := j.append(r2); err != nil {
				t.Fatalf("append once the disk works again: %v", err)
			}
			if w, h := j.written, j.headLSN(); w != h {
				t.Fatalf("written %d, head %d: a batch was left behind", w, h)
			}
		})
	}
}

// TestJournalSyncCoalesces: syncs arriving together after a write share
// one round of fdatasync, and a sync with nothing written since the last
// one makes none.
func TestJournalSyncCoalesces(t *testing.T) {
	dir := t.TempDir()
	j := openModeJournal(t, dir, "buffered", []int64{2 << 20})
	defer j.close()
	if err := j.replay(func(*record) error { return nil }); err != nil {
		t.Fatal(err)
	}
	appendPatterned(t, j, 1, 4096)
	start := j.syncs.Load()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := j.sync(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := j.syncs.Load() - start; n != 1 {
		t.Fatalf("8 syncs after one write made %d rounds of fdatasync, want 1", n)
	}
	if err := j.sync(); err != nil {
		t.Fatal(err)
	}
	if n := j.syncs.Load() - start; n != 1 {
		t.Fatalf("a sync with nothing new to sync made a round of fdatasync")
	}
	appendPatterned(t, j, 2, 4096)
	if err := j.sync(); err != nil {
		t.Fatal(err)
	}
	if n := j.syncs.Load() - start; n != 2 {
		t.Fatalf("a sync after a new write made %d rounds in all, want 2", n-1)
	}
}

// BenchmarkJournalAppend: 32 writers append records of 4 KiB and of 512 KiB
// (a 4 KiB and a whole-block write) to a 256 MiB ring, releasing it as it
// fills, in the engine's order (reserve, add, kick, wait, unreserve). -benchmem
// gives the journal's allocations per append; MB_alloc/GB and allocs/GB
// scale them to a gigabyte of records.
func BenchmarkJournalAppend(b *testing.B) {
	for _, size := range []int{4 << 10, 512 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			dir := b.TempDir()
			j, err := openJournal(dir, make(chan struct{}))
			if err != nil {
				b.Fatal(err)
			}
			if err := j.addDisk(filepath.Join(dir, "buf.img"), 256<<20); err != nil {
				b.Fatal(err)
			}
			if err := j.relayout(); err != nil {
				b.Fatal(err)
			}
			if err := j.replay(func(*record) error { return nil }); err != nil {
				b.Fatal(err)
			}
			defer j.close()
			n := recordSize(size)
			pressure := func() {
				// Everything written is as good as uploaded here.
				j.mu.Lock()
				w := j.written
				j.mu.Unlock()
				_ = j.release(w)
			}
			data := make([]byte, size) // records only read it
			appendOne := func() {
				r := record{kind: recWrite, nonce: 7, length: uint64(size), data: data}
				if err := j.reserve(context.Background(), n, pressure); err != nil {
					b.Error(err)
					return
				}
				end, err := j.add(&r)
				if err == nil {
					j.kick()
					err = j.wait(end)
				}
				if err != nil {
					b.Error(err)
				}
				j.unreserve(n)
			}
			// Warm up: the steady state is what is measured.
			var wg sync.WaitGroup
			for range 32 {
				wg.Go(func() {
					for range 64 {
						appendOne()
					}
				})
			}
			wg.Wait()
			b.SetBytes(int64(size))
			b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					appendOne()
				}
			})
			b.StopTimer()
			runtime.ReadMemStats(&ms1)
			gb := float64(b.N) * float64(size) / 1e9
			b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/1e6/gb, "MB_alloc/GB")
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/gb, "allocs/GB")
		})
	}
}

// fakeLeader marks a batch as being written, as a leader does, so that
// writers queue up behind it; the test then writes batches itself with
// writeNext.
func fakeLeader(j *journal) {
	j.mu.Lock()
	j.writing = true
	j.mu.Unlock()
}

// writeNext writes the oldest batch as the fake leader and goes on being
// it (a batch stays "being written").
func writeNext(j *journal) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.writing = false
	err := j.writeNextLocked()
	j.writing = true
	return err
}

// sealBatch queues the current batch as if it were full: the next record
// starts another.
func sealBatch(j *journal) {
	j.mu.Lock()
	j.queue = append(j.queue, j.cur)
	j.cur = nil
	j.mu.Unlock()
}

// asleep reports the ends the writers asleep in j wait for.
func asleep(j *journal) []uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	var ends []uint64
	for _, w := range j.waiters {
		ends = append(ends, w.end)
	}
	return ends
}

// waitAsleep polls until n writers are asleep (no timing is asserted).
func waitAsleep(t *testing.T, j *journal, n int) {
	t.Helper()
	for len(asleep(j)) != n {
		time.Sleep(time.Millisecond)
	}
}

// startWriter adds record id of n bytes and waits for it in the
// background; it sends the record's end, then wait's answer.
func startWriter(t *testing.T, j *journal, id, n int) (end uint64, answer <-chan error) {
	t.Helper()
	r := &record{kind: recWrite, nonce: 7, off: uint64(id) * 512, length: uint64(n), data: patterned(id, n)}
	if err := j.reserve(context.Background(), recordSize(n), func() {}); err != nil {
		t.Fatal(err)
	}
	end, err := j.add(r)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 1)
	go func() {
		defer j.unreserve(recordSize(n))
		ch <- j.wait(end)
	}()
	return end, ch
}

// TestJournalWakesOnlyWritten: behind a batch being written, writers of
// two batches sleep; writing the first batch wakes its writer alone (the
// other stays asleep, waiting for its end), and the leader leaving wakes
// the other to lead, which writes its batch itself. Nothing is written
// out of LSN order and both records replay.
func TestJournalWakesOnlyWritten(t *testing.T) {
	dir := t.TempDir()
	j := openModeJournal(t, dir, "buffered", []int64{2 << 20})
	if err := j.replay(func(*record) error { return nil }); err != nil {
		t.Fatal(err)
	}
	fakeLeader(j)
	endA, doneA := startWriter(t, j, 1, 4096)
	sealBatch(j)
	endB, doneB := startWriter(t, j, 2, 4096)
	waitAsleep(t, j, 2)
	if err := writeNext(j); err != nil {
		t.Fatal(err)
	}
	if err := <-doneA; err != nil {
		t.Fatalf("writer of the batch written: %v", err)
	}
	if got := asleep(j); !slices.Equal(got, []uint64{endB}) {
		t.Fatalf("after the batch up to %d was written, the writers asleep wait for %v, want only [%d]", endA, got, endB)
	}
	select {
	case err := <-doneB:
		t.Fatalf("the writer of the batch not written returned (%v)", err)
	default:
	}
	// The leader leaves: the writer left becomes the leader.
	j.mu.Lock()
	j.writing = false
	j.handoffLocked()
	j.mu.Unlock()
	if err := <-doneB; err != nil {
		t.Fatalf("heir writing its own batch: %v", err)
	}
	j.mu.Lock()
	w, h, heir := j.written, j.head, j.heir
	j.mu.Unlock()
	if w != h || w != endB || heir {
		t.Fatalf("written %d, head %d (want %d), heir still pending %v", w, h, endB, heir)
	}
	j.close()
	j = openModeJournal(t, dir, "buffered", []int64{2 << 20})
	defer j.close()
	if ids := replayedIDs(t, j); !slices.Equal(ids, []int{1, 2}) {
		t.Fatalf("replayed %v, want [1 2]", ids)
	}
}

// TestJournalFailedBatchAnswersEveryWaiter: a batch write that fails
// answers every writer asleep then with its error, the writer of a later
// batch too (nothing is acknowledged); once the disk takes writes again
// the failed batch is written first, then the later one, then a new
// record, and all three replay in order.
func TestJournalFailedBatchAnswersEveryWaiter(t *testing.T) {
	dir := t.TempDir()
	j := openModeJournal(t, dir, "buffered", []int64{2 << 20})
	if err := j.replay(func(*record) error { return nil }); err != nil {
		t.Fatal(err)
	}
	broken, err := os.Open(filepath.Join(dir, "buf0.img"))
	if err != nil {
		t.Fatal(err)
	}
	broken.Close() // every call on it fails
	j.mu.Lock()
	good := j.disks[0].f
	j.disks[0].f = broken
	j.mu.Unlock()

	fakeLeader(j)
	_, doneA := startWriter(t, j, 1, 4096)
	sealBatch(j)
	_, doneB := startWriter(t, j, 2, 8192)
	waitAsleep(t, j, 2)
	if err := writeNext(j); err == nil {
		t.Fatal("a batch write on a closed file succeeded")
	}
	for i, ch := range []<-chan error{doneA, doneB} {
		if err := <-ch; err == nil {
			t.Fatalf("writer %d was acknowledged though the batch write failed", i+1)
		}
	}
	j.mu.Lock()
	j.disks[0].f = good
	j.writing = false
	j.mu.Unlock()
	appendPatterned(t, j, 3, 4096)
	j.mu.Lock()
	w, h := j.written, j.head
	j.mu.Unlock()
	if w != h {
		t.Fatalf("written %d, head %d: a batch was left behind", w, h)
	}
	j.close()
	j = openModeJournal(t, dir, "buffered", []int64{2 << 20})
	defer j.close()
	if ids := replayedIDs(t, j); !slices.Equal(ids, []int{1, 2, 3}) {
		t.Fatalf("replayed %v, want [1 2 3]", ids)
	}
}

// TestJournalReusesBatchBuffers: appends allocate nothing once warm, a
// 4 KiB writer's batches take the smallest buffers and a 512 KiB one's
// the size that holds a record; and under 32 concurrent writers of mixed
// sizes the pool's buffers never add up to more than batchPool.
func TestJournalReusesBatchBuffers(t *testing.T) {
	for _, mode := range journalModes {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			j := openModeJournal(t, dir, mode, journalSizes(mode, 64<<20))
			defer j.close()
			if err := j.replay(func(*record) error { return nil }); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			appendOf := func(n int) func() {
				r := record{kind: recWrite, nonce: 7, length: uint64(n), data: patterned(1, n)}
				return func() {
					if err := j.reserve(ctx, recordSize(n), func() {}); err != nil {
						t.Fatal(err)
					}
					if _, err := j.append(&r); err != nil {
						t.Fatal(err)
					}
					j.unreserve(recordSize(n))
				}
			}
			pooled := func() (int64, int64) {
				j.mu.Lock()
				defer j.mu.Unlock()
				return j.pooled, j.bufAllocs
			}
			if a := testing.AllocsPerRun(200, appendOf(4096)); a != 0 {
				t.Errorf("a 4 KiB append allocates %v times", a)
			}
			if p, n := pooled(); p != batchMin || n != 1 {
				t.Errorf("4 KiB appends one at a time: %d bytes of buffers in %d allocations, want one of %d", p, n, batchMin)
			}
			if a := testing.AllocsPerRun(60, appendOf(BlockSize)); a != 0 {
				t.Errorf("a 512 KiB append allocates %v times", a)
			}
			if p, n := pooled(); p != int64(batchMin+classBytes(2)) || n != 2 {
				t.Errorf("then 512 KiB appends: %d bytes of buffers in %d allocations, want %d in 2", p, n, batchMin+classBytes(2))
			}
			if err := j.release(j.headLSN()); err != nil {
				t.Fatal(err)
			}
			// Everything written is as good as uploaded: a writer short
			// of space releases it.
			pressure := func() {
				j.mu.Lock()
				w := j.written
				j.mu.Unlock()
				_ = j.release(w)
			}
			var wg sync.WaitGroup
			for w := range 32 {
				wg.Go(func() {
					for i := range 20 {
						n := 4096
						if (w+i)%3 == 0 {
							n = BlockSize
						}
						r := record{kind: recWrite, nonce: 7, length: uint64(n), data: patterned(w, n)}
						if err := j.reserve(ctx, recordSize(n), pressure); err != nil {
							t.Error(err)
							return
						}
						if _, err := j.append(&r); err != nil {
							t.Error(err)
						}
						j.unreserve(recordSize(n))
						j.mu.Lock()
						p := j.pooled
						j.mu.Unlock()
						if p > batchPool {
							t.Errorf("%d bytes of pooled buffers, over %d", p, batchPool)
						}
					}
				})
			}
			wg.Wait()
			j.mu.Lock()
			defer j.mu.Unlock()
			var free int64
			for c, bs := range j.free {
				for _, b := range bs {
					if len(b.buf) != classBytes(c) || b.class != c {
						t.Errorf("a batch of %d bytes (class %d) is free among those of %d", len(b.buf), b.class, classBytes(c))
					}
					free += int64(len(b.buf))
				}
			}
			if j.cur != nil || len(j.queue) != 0 || free != j.pooled || free > batchPool {
				t.Errorf("all written: %d bytes of free buffers, %d pooled (at most %d), cur %v, %d queued", free, j.pooled, batchPool, j.cur != nil, len(j.queue))
			}
		})
	}
}

// TestJournalAdmitsInOrder: past inflightMax of writes under way, reserve
// queues writers in order of arrival; one whose context ends leaves the
// queue, and an unreserve admits the next; 64 writers of 512 KiB records
// at once never have more than inflightMax under way, and the pool stays
// within batchPool.
func TestJournalAdmitsInOrder(t *testing.T) {
	dir := t.TempDir()
	j := openModeJournal(t, dir, "buffered", []int64{64 << 20})
	defer j.close()
	if err := j.replay(func(*record) error { return nil }); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	queued := func(n int) {
		for {
			j.mu.Lock()
			q := len(j.admits)
			j.mu.Unlock()
			if q == n {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	if err := j.reserve(ctx, inflightMax, func() {}); err != nil {
		t.Fatalf("a lone write of inflightMax: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	first, second := make(chan error, 1), make(chan error, 1)
	go func() { first <- j.reserve(cctx, 4096, func() {}) }()
	queued(1)
	go func() { second <- j.reserve(ctx, 8192, func() {}) }()
	queued(2)
	cancel()
	if err := <-first; err == nil {
		t.Fatal("a queued reserve whose context ended succeeded")
	}
	queued(1)
	select {
	case err := <-second:
		t.Fatalf("a reserve was admitted past inflightMax (%v)", err)
	default:
	}
	j.unreserve(inflightMax)
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	j.mu.Lock()
	r, p := j.reserved, j.promised
	j.mu.Unlock()
	if r != 8192 || p != 0 {
		t.Fatalf("reserved %d, promised %d, want 8192 and 0", r, p)
	}
	j.unreserve(8192)

	pressure := func() {
		j.mu.Lock()
		w := j.written
		j.mu.Unlock()
		_ = j.release(w)
	}
	data := patterned(1, BlockSize)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range 8 {
				n := recordSize(BlockSize)
				if err := j.reserve(ctx, n, pressure); err != nil {
					t.Error(err)
					return
				}
				j.mu.Lock()
				r, p := j.reserved, j.pooled
				j.mu.Unlock()
				if r > inflightMax || p > batchPool {
					t.Errorf("%d bytes of writes under way (at most %d), %d of pooled buffers (at most %d)", r, inflightMax, p, batchPool)
				}
				rec := record{kind: recWrite, nonce: 7, length: BlockSize, data: data}
				if _, err := j.append(&rec); err != nil {
					t.Error(err)
				}
				j.unreserve(n)
			}
		})
	}
	wg.Wait()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.reserved != 0 || j.promised != 0 || len(j.admits) != 0 || j.written != j.head {
		t.Fatalf("all done: reserved %d, promised %d, %d queued, written %d of %d", j.reserved, j.promised, len(j.admits), j.written, j.head)
	}
}
