package catalog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Why the catalog checks its own file before bbolt sees it: bbolt maps the
// file into memory and trusts it. A file shorter than its pages makes the
// first access beyond the end fault (SIGBUS), garbage in a page trips one
// of bbolt's assertions (a panic) or sends it to an address outside the
// map, and an overwritten meta page makes bbolt fall back silently to the
// other one, that is, to the state before the last committed transaction.
// None of these may crash volgw or start it on a state older than what it
// acknowledged. So Open reads the file with plain reads first (verifyFile),
// then lets bbolt open it and reads every record through it on a goroutine
// where a fault is a recoverable panic (openVerified), and runs bbolt's own
// consistency walk. The catalog is small (kilobytes), so all of this costs
// milliseconds.

// bbolt's on-disk format (go.etcd.io/bbolt/internal/common), version 2, in
// the machine's byte order.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16 // id u64, flags u16, count u16, overflow u32
	elementSize      = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	metaPageFlag     = 0x04
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01
	noFreelist       = ^uint64(0)
	bucketHeaderSize = 16 // root pgid u64, sequence u64
)

var order = binary.NativeEndian

type boltMeta struct {
	pageSize           uint32
	root, freelist, hw uint64 // root bucket's page, freelist page, high-water mark (pages in use)
	txid               uint64
}

// verifyFile checks catalog.db's structure with ordinary reads: both meta
// pages valid, the file as long as its high-water mark says, and every page
// reachable from the newest meta (the freelist, every bucket's tree)
// well-formed and inside the file. It returns an *Error wrapping ErrDamaged
// for the first problem found.
func verifyFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	damaged := func(format string, args ...any) error {
		return &Error{Err: ErrDamaged, Path: path, Detail: fmt.Sprintf(format, args...)}
	}
	// Page 0 is at offset 0; its page size says where page 1 is.
	first := make([]byte, 4096)
	if n, err := f.ReadAt(first, 0); err != nil && !(err == io.EOF && n >= pageHeaderSize+64) {
		return damaged("%d bytes: too short for a catalog", st.Size())
	}
	m0, err0 := parseMeta(first)
	if err0 != nil {
		return damaged("meta page 0 %v; bbolt would fall back to the other meta page, that is to the state before the last committed change", err0)
	}
	ps := int64(m0.pageSize)
	p1 := make([]byte, ps)
	if _, err := f.ReadAt(p1, ps); err != nil {
		return damaged("%d bytes: too short for its two meta pages", st.Size())
	}
	m1, err1 := parseMeta(p1)
	if err1 != nil {
		return damaged("meta page 1 %v; bbolt would fall back to the other meta page, that is to the state before the last committed change", err1)
	}
	if m1.pageSize != m0.pageSize {
		return damaged("the meta pages disagree on the page size (%d, %d)", m0.pageSize, m1.pageSize)
	}
	m := m0
	if m1.txid > m0.txid {
		m = m1
	}
	if need := int64(m.hw) * ps; st.Size() < need {
		return damaged("it is %d bytes long but its pages reach %d bytes: it was truncated", st.Size(), need)
	}
	w := &pageWalker{f: f, pageSize: ps, hw: m.hw, seen: map[uint64]bool{0: true, 1: true}}
	if m.freelist != noFreelist {
		if err := w.freelist(m.freelist); err != nil {
			return damaged("%v", err)
		}
	}
	if err := w.tree(m.root); err != nil {
		return damaged("%v", err)
	}
	return nil
}

func parseMeta(p []byte) (boltMeta, error) {
	if len(p) < pageHeaderSize+64 {
		return boltMeta{}, fmt.Errorf("is cut short")
	}
	flags := order.Uint16(p[8:])
	b := p[pageHeaderSize:]
	sum := fnv.New64a()
	sum.Write(b[:56]) // every field before the checksum
	switch {
	case order.Uint32(b[0:]) != boltMagic:
		return boltMeta{}, fmt.Errorf("has no bbolt magic number (overwritten)")
	case flags != metaPageFlag:
		return boltMeta{}, fmt.Errorf("is not a meta page (flags %#x)", flags)
	case order.Uint32(b[4:]) != boltVersion:
		return boltMeta{}, fmt.Errorf("has format version %d, not %d", order.Uint32(b[4:]), boltVersion)
	case order.Uint64(b[56:]) != sum.Sum64():
		return boltMeta{}, fmt.Errorf("fails its checksum")
	}
	m := boltMeta{
		pageSize: order.Uint32(b[8:]), root: order.Uint64(b[16:]), freelist: order.Uint64(b[32:]),
		hw: order.Uint64(b[40:]), txid: order.Uint64(b[48:]),
	}
	if m.pageSize < 1024 || m.pageSize > 1<<16 || m.pageSize&(m.pageSize-1) != 0 {
		return boltMeta{}, fmt.Errorf("has page size %d", m.pageSize)
	}
	if m.root < 2 || m.root >= m.hw || (m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.hw)) {
		return boltMeta{}, fmt.Errorf("names pages (root %d, freelist %d) beyond its high-water mark %d", m.root, m.freelist, m.hw)
	}
	return m, nil
}

// pageWalker reads pages with ReadAt and checks what bbolt would otherwise
// take on trust.
type pageWalker struct {
	f        *os.File
	pageSize int64
	hw       uint64          // pages below it exist in the file (checked)
	seen     map[uint64]bool // pages already claimed: each page has one owner
}

// read returns page id with its overflow pages, after checking its header.
func (w *pageWalker) read(id uint64, wantFlags ...uint16) ([]byte, error) {
	if id < 2 || id >= w.hw {
		return nil, fmt.Errorf("a reference to page %d, outside the file's pages 2..%d", id, w.hw-1)
	}
	head := make([]byte, pageHeaderSize)
	if _, err := w.f.ReadAt(head, int64(id)*w.pageSize); err != nil {
		return nil, fmt.Errorf("page %d: %v", id, err)
	}
	if got := order.Uint64(head); got != id {
		return nil, fmt.Errorf("page %d identifies itself as page %d (overwritten)", id, got)
	}
	flags, overflow := order.Uint16(head[8:]), uint64(order.Uint32(head[12:]))
	ok := false
	for _, f := range wantFlags {
		ok = ok || flags == f
	}
	if !ok {
		return nil, fmt.Errorf("page %d has type %#x, not %#x", id, flags, wantFlags)
	}
	if overflow >= w.hw-id {
		return nil, fmt.Errorf("page %d overflows %d pages past the file's end", id, overflow)
	}
	for i := id; i <= id+overflow; i++ {
		if w.seen[i] {
			return nil, fmt.Errorf("page %d is used twice", i)
		}
		w.seen[i] = true
	}
	p := make([]byte, int64(overflow+1)*w.pageSize)
	if _, err := w.f.ReadAt(p, int64(id)*w.pageSize); err != nil {
		return nil, fmt.Errorf("page %d: %v", id, err)
	}
	return p, nil
}

func (w *pageWalker) freelist(id uint64) error {
	p, err := w.read(id, freelistPageFlag)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	n, start := uint64(order.Uint16(p[10:])), uint64(pageHeaderSize)
	if n == 0xFFFF { // the real count is the first element
		if len(p) < pageHeaderSize+8 {
			return fmt.Errorf("freelist page %d is cut short", id)
		}
		n, start = order.Uint64(p[pageHeaderSize:]), pageHeaderSize+8
	}
	if n > (uint64(len(p))-start)/8 {
		return fmt.Errorf("freelist page %d claims %d free pages, more than it holds", id, n)
	}
	for i := range n {
		if free := order.Uint64(p[start+8*i:]); free < 2 || free >= w.hw {
			return fmt.Errorf("freelist page %d lists page %d, outside the file's pages", id, free)
		}
	}
	return nil
}

// tree checks the B+tree rooted at page id: every element inside its page,
// keys in order, children inside the file, and nested buckets likewise.
func (w *pageWalker) tree(id uint64) error {
	p, err := w.read(id, branchPageFlag, leafPageFlag)
	if err != nil {
		return err
	}
	return w.node(p, fmt.Sprintf("page %d", id))
}

// node checks one page image p (a page of the file or an inline bucket).
func (w *pageWalker) node(p []byte, where string) error {
	flags, n := order.Uint16(p[8:]), int(order.Uint16(p[10:]))
	if n == 0 && flags == branchPageFlag {
		return fmt.Errorf("%s: an empty branch", where)
	}
	if pageHeaderSize+n*elementSize > len(p) {
		return fmt.Errorf("%s: %d elements do not fit in %d bytes", where, n, len(p))
	}
	var prev []byte
	for i := range n {
		e := pageHeaderSize + i*elementSize
		var pos, ksize, vsize int
		if flags == branchPageFlag {
			pos, ksize = int(order.Uint32(p[e:])), int(order.Uint32(p[e+4:]))
		} else {
			pos, ksize, vsize = int(order.Uint32(p[e+4:])), int(order.Uint32(p[e+8:])), int(order.Uint32(p[e+12:]))
		}
		start := e + pos
		if pos < 0 || ksize < 0 || vsize < 0 || start < 0 || start+ksize+vsize > len(p) || start+ksize+vsize < start {
			return fmt.Errorf("%s: element %d lies outside the page", where, i)
		}
		key := p[start : start+ksize]
		if prev != nil && bytes.Compare(prev, key) >= 0 {
			return fmt.Errorf("%s: keys out of order at element %d", where, i)
		}
		prev = key
		if flags == branchPageFlag {
			if err := w.tree(order.Uint64(p[e+8:])); err != nil {
				return err
			}
			continue
		}
		if order.Uint32(p[e:])&bucketLeafFlag == 0 {
			continue
		}
		v := p[start+ksize : start+ksize+vsize]
		if len(v) < bucketHeaderSize {
			return fmt.Errorf("%s: bucket %q has a %d-byte header", where, key, len(v))
		}
		if root := order.Uint64(v); root != 0 {
			if err := w.tree(root); err != nil {
				return fmt.Errorf("bucket %q: %w", key, err)
			}
			continue
		}
		inline := v[bucketHeaderSize:]
		if len(inline) < pageHeaderSize || order.Uint16(inline[8:]) != leafPageFlag {
			return fmt.Errorf("%s: inline bucket %q is not a leaf", where, key)
		}
		if err := w.node(inline, fmt.Sprintf("inline bucket %q", key)); err != nil {
			return err
		}
	}
	return nil
}

// openVerified opens a file verifyFile accepted and reads all of it
// through bbolt: the freelist (PreLoadFreelist), every record of every
// bucket, decoded and validated as the catalog's readers would, and bbolt's
// own consistency check. It runs with SetPanicOnFault, so that a fault on
// the mapped file that verifyFile did not foresee is a panic, and every
// panic, bbolt's assertions included, becomes an *Error wrapping
// ErrDamaged.
func openVerified(path string) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			// The bbolt handle (if any) is abandoned: its state after a
			// panic is unknown, and the process is about to refuse to run.
			db, err = nil, &Error{Err: ErrDamaged, Path: path, Detail: fmt.Sprintf("reading it failed: %v", r)}
		}
	}()
	// The data dir's lock is already held, so bbolt's own never waits.
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, PreLoadFreelist: true})
	if errors.Is(err, berrors.ErrTimeout) {
		// Only a process that does not take the data dir's lock (a volgw
		// from before it existed) can hold bbolt's.
		return nil, &Error{Err: ErrInUse, Path: path, Detail: "another process holds " + FileName + " open; stop it first"}
	}
	if err != nil {
		return nil, &Error{Err: ErrDamaged, Path: path, Detail: err.Error()}
	}
	err = b.View(func(btx *bolt.Tx) error {
		if err := (&Tx{tx: btx}).verifyRecords(); err != nil {
			return err
		}
		var errs []string
		for e := range btx.Check() {
			errs = append(errs, e.Error())
		}
		if len(errs) > 0 {
			return fmt.Errorf("bbolt consistency check: %s", errs[0])
		}
		return nil
	})
	if err != nil {
		b.Close()
		return nil, &Error{Err: ErrDamaged, Path: path, Detail: err.Error()}
	}
	return b, nil
}

// verifyRecords decodes and validates every record of every known bucket.
func (tx *Tx) verifyRecords() error {
	checks := map[string]func(bucket, k, v []byte) error{
		string(bucketActivationKeys): decodeOnly[ActivationKey],
		string(bucketGateways):       decodeOnly[Gateway],
		string(bucketDisks):          decodeOnly[Disk],
		string(bucketVolumes):        decodeOnly[Volume],
		string(bucketChap):           decodeOnly[ChapCredential],
		string(bucketTags):           decodeOnly[ResourceTags],
		string(bucketSchedules):      decodeOnly[Schedule],
		string(bucketClientTokens):   decodeOnly[ClientToken],
		string(bucketMaintenance):    decodeOnly[Maintenance],
		string(bucketBandwidth):      decodeOnly[Bandwidth],
	}
	if tx.tx.Bucket(bucketMeta) != nil {
		if _, err := tx.Generation(); err != nil {
			return err
		}
	}
	for name, check := range checks {
		b := tx.tx.Bucket([]byte(name))
		if b == nil {
			continue // a catalog from before the bucket existed
		}
		err := b.ForEach(func(k, v []byte) error {
			if v == nil {
				return fmt.Errorf("%s: unexpected nested bucket %q", name, k)
			}
			return check([]byte(name), k, v)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func decodeOnly[T any, P interface {
	*T
	record
}](bucket, key, raw []byte) error {
	_, err := decode[T, P](bucket, key, raw)
	return err
}
