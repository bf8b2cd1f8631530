package volume

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
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
