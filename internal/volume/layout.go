package volume

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/scsi"
	"github.com/volgw/volgw/internal/seal"
)

// Geometry. A block is the EBS snapshot block size; a page holds the hashes
// of pageBlocks consecutive blocks, so one page covers 2 GiB and a 32 TiB
// volume has 16384 pages.
const (
	BlockSize  = 512 << 10
	pageBlocks = 4096

	MinVolumeSize = 1 << 30
	MaxVolumeSize = 32 << 40
)

// hash is a SHA-256 content address. The zero hash names the all-zero block
// (or the empty page): it is never stored.
type hash [sha256.Size]byte

func (h hash) isZero() bool   { return h == hash{} }
func (h hash) String() string { return hex.EncodeToString(h[:]) }

func parseHash(s string) (hash, error) {
	var h hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("%w: bad hash %q", ErrCorrupt, s)
	}
	copy(h[:], b)
	return h, nil
}

// Object keys, relative to Config.Prefix.
func blockKey(h hash) string { s := h.String(); return "blocks/" + s[:2] + "/" + s }
func pageKey(h hash) string  { s := h.String(); return "pages/" + s[:2] + "/" + s }

// rootKey names a root. Each publish carries a fresh token (see fence.go),
// so two writers of one volume at the same seq (a data dir and its copy)
// never overwrite each other's root; roots written before tokens existed
// have none and keep their old key, which is still read.
func rootKey(vol string, seq uint64, token string) string {
	if token == "" {
		return fmt.Sprintf("volumes/%s/roots/%020d", vol, seq)
	}
	return fmt.Sprintf("volumes/%s/roots/%020d-%s", vol, seq, token)
}
func headKey(vol string) string    { return "volumes/" + vol + "/head" }
func snapshotKey(id string) string { return "snapshots/" + id + ".json" }

var zeroBlock = make([]byte, BlockSize)

// page is the decoded form of a manifest page: block index within the page →
// block hash of its non-zero blocks, the blocks written (touched) that
// read as zeros, and the patches of blocks stored as a base and the
// sectors changed since (patch.go). Absent entries are zero blocks never
// written (or freed by an unmap). Pages are immutable once loaded; a cut
// copies before changing one.
//
// Touched zero blocks are kept so that VolumeUsedInBytes counts blocks
// touched, as AWS does: writing zeros over data does not lower it. They
// are not stored as blocks (a zero block never is).
//
// A patched block's base is blocks[i], or the zero block when blocks has
// no entry i (a block first written in a few sectors); it is never also
// in zeros.
type page struct {
	blocks  map[uint16]hash
	zeros   map[uint16]bool
	patches map[uint16]patchRef
}

func (p *page) touched() int { return len(p.blocks) + len(p.zeros) + p.patchedZeros() }

// nonZero counts the blocks stored (whole, or as a patch).
func (p *page) nonZero() int { return len(p.blocks) + p.patchedZeros() }

// patchedZeros counts the patches over the zero block.
func (p *page) patchedZeros() int {
	n := 0
	for i := range p.patches {
		if _, ok := p.blocks[i]; !ok {
			n++
		}
	}
	return n
}

// ref is how the page names block i (the zero ref: a zero block).
func (p *page) ref(i uint16) blockRef {
	r := blockRef{Base: p.blocks[i]}
	if pt, ok := p.patches[i]; ok {
		r.Patch, r.Mask, r.Pack = pt.Hash, pt.Mask, pt.Pack
	}
	return r
}

// stored returns the indexes of the page's non-zero blocks, in order.
func (p *page) stored() []uint16 {
	out := make([]uint16, 0, len(p.blocks)+len(p.patches))
	for i := range p.blocks {
		out = append(out, i)
	}
	for i := range p.patches {
		if _, dup := p.blocks[i]; !dup {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out
}

// clone copies p for a cut or an import to change.
func (p *page) clone() *page {
	np := &page{blocks: make(map[uint16]hash, len(p.blocks)), zeros: make(map[uint16]bool, len(p.zeros)), patches: make(map[uint16]patchRef, len(p.patches))}
	maps.Copy(np.blocks, p.blocks)
	maps.Copy(np.zeros, p.zeros)
	maps.Copy(np.patches, p.patches)
	return np
}

func emptyPage() *page {
	return &page{blocks: map[uint16]hash{}, zeros: map[uint16]bool{}, patches: map[uint16]patchRef{}}
}

// set makes block i what r names (the zero ref: a touched zero block).
func (p *page) set(i uint16, r blockRef) {
	delete(p.blocks, i)
	delete(p.zeros, i)
	delete(p.patches, i)
	switch {
	case r.isZero():
		p.zeros[i] = true
	default:
		if !r.Base.isZero() {
			p.blocks[i] = r.Base
		}
		if !r.Patch.isZero() {
			p.patches[i] = patchRef{Hash: r.Patch, Mask: r.Mask, Pack: r.Pack}
		}
	}
}

// free forgets block i: an unmapped block, untouched.
func (p *page) free(i uint16) {
	delete(p.blocks, i)
	delete(p.zeros, i)
	delete(p.patches, i)
}

// encodePage writes "VPG1", a count, then (index, hash) pairs in index order,
// so equal pages encode to equal bytes and are stored once. A page with
// touched zero blocks is "VPG2": the same, then a count and their indexes
// in order. (So a page without any encodes as before and is shared with
// roots written before VPG2.) A page with patches is "VPG3": VPG2's
// layout (its zero count may be 0), then a count and (index, patch hash,
// sector mask) triples in index order. A page with patches in packs
// (pack.go) is "VPG4": VPG3's layout, but after the patch count come the
// packs (a count, then (hash, size) pairs in hash order) and each patch
// entry ends with where it is: (pack number, offset, length), pack number
// noPack for a patch stored as an object of its own.
func encodePage(p *page) []byte {
	out := make([]byte, 8, 8+len(p.blocks)*(2+sha256.Size)+4+2*len(p.zeros)+4+len(p.patches)*(2+sha256.Size+sectorMaskBytes))
	copy(out, "VPG1")
	binary.BigEndian.PutUint32(out[4:], uint32(len(p.blocks)))
	for _, i := range sortedKeys(p.blocks) {
		h := p.blocks[i]
		out = binary.BigEndian.AppendUint16(out, i)
		out = append(out, h[:]...)
	}
	if len(p.zeros) > 0 || len(p.patches) > 0 {
		copy(out, "VPG2")
		out = binary.BigEndian.AppendUint32(out, uint32(len(p.zeros)))
		for _, i := range sortedKeys(p.zeros) {
			out = binary.BigEndian.AppendUint16(out, i)
		}
	}
	if len(p.patches) > 0 {
		copy(out, "VPG3")
		out = binary.BigEndian.AppendUint32(out, uint32(len(p.patches)))
		packs := p.packs()
		if len(packs) > 0 {
			copy(out, "VPG4")
			out = binary.BigEndian.AppendUint32(out, uint32(len(packs)))
			for _, pk := range packs {
				out = append(out, pk.Hash[:]...)
				out = binary.BigEndian.AppendUint32(out, pk.Size)
			}
		}
		for _, i := range sortedKeys(p.patches) {
			pt := p.patches[i]
			out = binary.BigEndian.AppendUint16(out, i)
			out = append(out, pt.Hash[:]...)
			out = pt.Mask.append(out)
			if len(packs) > 0 {
				n := noPack
				if !pt.Pack.Hash.isZero() {
					n, _ = slices.BinarySearchFunc(packs, pt.Pack.Hash, func(a packLoc, h hash) int { return bytes.Compare(a.Hash[:], h[:]) })
				}
				out = binary.BigEndian.AppendUint16(out, uint16(n))
				out = binary.BigEndian.AppendUint32(out, pt.Pack.Off)
				out = binary.BigEndian.AppendUint32(out, pt.Pack.Len)
			}
		}
	}
	return out
}

// Sizes of a VPG4 page's entries.
const (
	pagePatchEntry = 2 + sha256.Size + sectorMaskBytes + 2 + 4 + 4
	pagePackEntry  = sha256.Size + 4
	noPack         = 0xffff
)

// packs returns the packs p's patches are in, in hash order, each once
// (Off and Len zero).
func (p *page) packs() []packLoc {
	var out []packLoc
	for _, pt := range p.patches {
		if !pt.Pack.Hash.isZero() {
			out = append(out, packLoc{Hash: pt.Pack.Hash, Size: pt.Pack.Size})
		}
	}
	slices.SortFunc(out, func(a, b packLoc) int { return bytes.Compare(a.Hash[:], b.Hash[:]) })
	return slices.CompactFunc(out, func(a, b packLoc) bool { return a.Hash == b.Hash })
}

// sortedKeys returns m's keys in order: what an encoding that must be
// the same for equal contents iterates.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}

func decodePage(b []byte) (*page, error) {
	magic := ""
	if len(b) >= 8 {
		magic = string(b[:4])
	}
	if magic != "VPG1" && magic != "VPG2" && magic != "VPG3" && magic != "VPG4" {
		return nil, fmt.Errorf("%w: page header", ErrCorrupt)
	}
	v1, v3, v4 := magic == "VPG1", magic == "VPG3" || magic == "VPG4", magic == "VPG4"
	n := int(binary.BigEndian.Uint32(b[4:]))
	size := 8 + n*(2+sha256.Size)
	if n > pageBlocks || len(b) < size || (v1 && len(b) != size) {
		return nil, fmt.Errorf("%w: page of %d bytes claims %d entries", ErrCorrupt, len(b), n)
	}
	rest := b[size:]
	b = b[:size]
	p := emptyPage()
	b = b[8:]
	prev := -1
	for range n {
		i := binary.BigEndian.Uint16(b)
		if int(i) >= pageBlocks || int(i) <= prev {
			return nil, fmt.Errorf("%w: page entry %d out of range or order", ErrCorrupt, i)
		}
		prev = int(i)
		var h hash
		copy(h[:], b[2:])
		if h.isZero() {
			return nil, fmt.Errorf("%w: page names the zero hash", ErrCorrupt)
		}
		p.blocks[i] = h
		b = b[2+sha256.Size:]
	}
	if v1 {
		return p, nil
	}
	if len(rest) < 4 {
		return nil, fmt.Errorf("%w: page without its zero-block count", ErrCorrupt)
	}
	z := int(binary.BigEndian.Uint32(rest))
	if (z == 0 && !v3) || z > pageBlocks-n || len(rest) < 4+2*z || (!v3 && len(rest) != 4+2*z) {
		return nil, fmt.Errorf("%w: page of %d bytes claims %d zero blocks", ErrCorrupt, len(rest), z)
	}
	prev = -1
	for k := range z {
		i := binary.BigEndian.Uint16(rest[4+2*k:])
		if int(i) >= pageBlocks || int(i) <= prev {
			return nil, fmt.Errorf("%w: page zero block %d out of range or order", ErrCorrupt, i)
		}
		if _, dup := p.blocks[i]; dup {
			return nil, fmt.Errorf("%w: page block %d both zero and not", ErrCorrupt, i)
		}
		prev = int(i)
		p.zeros[i] = true
	}
	if !v3 {
		return p, nil
	}
	rest = rest[4+2*z:]
	entry := 2 + sha256.Size + sectorMaskBytes
	if len(rest) < 4 {
		return nil, fmt.Errorf("%w: page without its patch count", ErrCorrupt)
	}
	np := int(binary.BigEndian.Uint32(rest))
	rest = rest[4:]
	var packs []packLoc
	if v4 {
		entry = pagePatchEntry
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: page without its pack count", ErrCorrupt)
		}
		n := int(binary.BigEndian.Uint32(rest))
		if n == 0 || n > np || len(rest) < 4+n*pagePackEntry {
			return nil, fmt.Errorf("%w: page of %d bytes claims %d packs for %d patches", ErrCorrupt, len(rest), n, np)
		}
		rest = rest[4:]
		for k := range n {
			var pk packLoc
			copy(pk.Hash[:], rest)
			pk.Size = binary.BigEndian.Uint32(rest[sha256.Size:])
			if pk.Hash.isZero() || (k > 0 && bytes.Compare(packs[k-1].Hash[:], pk.Hash[:]) >= 0) {
				return nil, fmt.Errorf("%w: page pack %d is the zero hash or out of order", ErrCorrupt, k)
			}
			packs = append(packs, pk)
			rest = rest[pagePackEntry:]
		}
	}
	if np == 0 || np > pageBlocks || len(rest) != np*entry {
		return nil, fmt.Errorf("%w: page of %d bytes claims %d patches", ErrCorrupt, len(rest), np)
	}
	prev = -1
	for range np {
		i := binary.BigEndian.Uint16(rest)
		if int(i) >= pageBlocks || int(i) <= prev || p.zeros[i] {
			return nil, fmt.Errorf("%w: page patch %d out of range, order, or of a zero block", ErrCorrupt, i)
		}
		prev = int(i)
		var pt patchRef
		copy(pt.Hash[:], rest[2:])
		pt.Mask = readSectorMask(rest[2+sha256.Size:])
		if pt.Hash.isZero() || pt.Mask.empty() {
			return nil, fmt.Errorf("%w: page patch %d is empty", ErrCorrupt, i)
		}
		if v4 {
			at := rest[2+sha256.Size+sectorMaskBytes:]
			k := int(binary.BigEndian.Uint16(at))
			off, n := binary.BigEndian.Uint32(at[2:]), binary.BigEndian.Uint32(at[6:])
			switch {
			case k == noPack && off == 0 && n == 0:
			case k < len(packs) && n > 0 && n <= maxPatchObject && uint64(off)+uint64(n) <= uint64(packs[k].Size):
				pt.Pack = packLoc{Hash: packs[k].Hash, Size: packs[k].Size, Off: off, Len: n}
			default:
				return nil, fmt.Errorf("%w: page patch %d is at %d+%d of pack %d (of %d)", ErrCorrupt, i, off, n, k, len(packs))
			}
		}
		p.patches[i] = pt
		rest = rest[entry:]
	}
	return p, nil
}

// pageRef is one non-empty page of a root.
type pageRef struct {
	Hash    hash
	Blocks  int // non-zero blocks in the page
	Touched int // blocks written in the page, zero or not: for UsageBytes
}

// root is a recovery point: everything needed to read the volume as of the
// cut. Roots are immutable; a volume's head names the latest.
type root struct {
	// sealedWith is the key the root was read sealed with (nil: clear, or
	// built here); not part of its encoding.
	sealedWith *seal.Key

	Volume  string
	Seq     uint64
	Size    int64
	CutTime time.Time
	Owner   string // gateway that wrote it
	// Token is the publish token of the head that names this root ("" for
	// a root written before tokens existed); it is part of the key.
	Token string
	// JournalLSN is the cut's position in Owner's journal: every record of
	// this volume before it is in this root, none after it.
	JournalLSN uint64
	Pages      map[uint32]pageRef
	// Parent is the key of the root this one was cut on top of (the
	// volume's published head when the cut began); "" for a volume's
	// first root and for roots written before parents were recorded.
	// Following Parent from the head is the volume's history: a root not
	// on that chain is a fork (retention.go) and never a recovery point.
	Parent string
	// Retain is the recovery-point retention window its writer ran with
	// (Config.RecoveryPointRetention): GC of any gateway keeps the
	// history the head's root asks for (gc.go, retention.go).
	Retain time.Duration
}

func (r *root) usage() int64 {
	var n int64
	for _, p := range r.Pages {
		n += int64(p.Touched)
	}
	return n * BlockSize
}

func (r *root) key() string { return rootKey(r.Volume, r.Seq, r.Token) }

type rootJSON struct {
	Volume     string     `json:"volume"`
	Seq        uint64     `json:"seq"`
	Size       int64      `json:"size"`
	CutTime    time.Time  `json:"cutTime"`
	Owner      string     `json:"owner"`
	Token      string     `json:"token,omitempty"`
	JournalLSN uint64     `json:"journalLSN"`
	Pages      [][]string `json:"pages"` // [index, hash, blocks] or [index, hash, blocks, touched] when they differ
	Parent     string     `json:"parent,omitempty"`
	RetainSec  int64      `json:"retainSeconds,omitempty"`
}

func encodeRoot(r *root) []byte {
	j := rootJSON{Volume: r.Volume, Seq: r.Seq, Size: r.Size, CutTime: r.CutTime.UTC(), Owner: r.Owner, Token: r.Token, JournalLSN: r.JournalLSN, Parent: r.Parent, RetainSec: int64(r.Retain / time.Second)}
	idx := make([]int, 0, len(r.Pages))
	for i := range r.Pages {
		idx = append(idx, int(i))
	}
	sort.Ints(idx)
	j.Pages = make([][]string, 0, len(idx))
	for _, i := range idx {
		p := r.Pages[uint32(i)]
		e := []string{fmt.Sprint(i), p.Hash.String(), fmt.Sprint(p.Blocks)}
		if p.Touched != p.Blocks {
			e = append(e, fmt.Sprint(p.Touched))
		}
		j.Pages = append(j.Pages, e)
	}
	b, err := json.Marshal(j)
	if err != nil {
		panic(fmt.Sprintf("volume: encoding root: %v", err)) // only plain types
	}
	return b
}

func decodeRoot(b []byte) (*root, error) {
	var j rootJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%w: root: %v", ErrCorrupt, err)
	}
	if j.Size <= 0 || j.Size > MaxVolumeSize || j.Volume == "" {
		return nil, fmt.Errorf("%w: root of %q has size %d", ErrCorrupt, j.Volume, j.Size)
	}
	npages := uint64((j.Size+BlockSize-1)/BlockSize+pageBlocks-1) / pageBlocks
	r := &root{Volume: j.Volume, Seq: j.Seq, Size: j.Size, CutTime: j.CutTime, Owner: j.Owner, Token: j.Token, JournalLSN: j.JournalLSN, Pages: make(map[uint32]pageRef, len(j.Pages)),
		Parent: j.Parent, Retain: time.Duration(j.RetainSec) * time.Second}
	for _, e := range j.Pages {
		if len(e) != 3 && len(e) != 4 {
			return nil, fmt.Errorf("%w: root page entry %v", ErrCorrupt, e)
		}
		var i uint32
		var n int
		if _, err := fmt.Sscan(e[0], &i); err != nil || uint64(i) >= npages {
			return nil, fmt.Errorf("%w: root page index %q", ErrCorrupt, e[0])
		}
		if _, err := fmt.Sscan(e[2], &n); err != nil || n < 0 || n > pageBlocks {
			return nil, fmt.Errorf("%w: root page count %q", ErrCorrupt, e[2])
		}
		touched := n // roots before touched counts: every block counted was non-zero
		if len(e) == 4 {
			if _, err := fmt.Sscan(e[3], &touched); err != nil || touched < n || touched > pageBlocks {
				return nil, fmt.Errorf("%w: root page touched count %q", ErrCorrupt, e[3])
			}
		}
		if touched == 0 {
			return nil, fmt.Errorf("%w: root names an empty page %d", ErrCorrupt, i)
		}
		h, err := parseHash(e[1])
		if err != nil {
			return nil, err
		}
		if _, dup := r.Pages[i]; dup || h.isZero() {
			return nil, fmt.Errorf("%w: root page %d repeated or zero", ErrCorrupt, i)
		}
		r.Pages[i] = pageRef{Hash: h, Blocks: n, Touched: touched}
	}
	return r, nil
}

// head names a volume's latest root. Deleted is a tombstone: the volume is
// gone, but the root stays marked for the GC grace period so that a clone
// that read it just before can still publish (see gc.go).
//
// Token is unique to one publish (one PUT of the head by one data dir): it
// is how a writer tells its own head from another's (fence.go). Heads
// written before tokens existed have none.
type head struct {
	Seq       uint64    `json:"seq"`
	Owner     string    `json:"owner"`
	Token     string    `json:"token,omitempty"`
	Deleted   bool      `json:"deleted,omitempty"`
	DeletedAt time.Time `json:"deletedAt,omitzero"`
	// Detached: no gateway owns the volume (attach.go). Seq and Token
	// still name its last root, which GC keeps and AttachVolume builds
	// on; Note is what the control plane asked to keep with it.
	Detached   bool      `json:"detached,omitempty"`
	DetachedAt time.Time `json:"detachedAt,omitzero"`
	Note       []byte    `json:"note,omitempty"`
}

// rootKey is the key of the root the head names.
func (h head) rootKey(vol string) string { return rootKey(vol, h.Seq, h.Token) }

// Sentinel errors of the engine.
var (
	// ErrCorrupt: an object or journal record failed validation.
	ErrCorrupt = errors.New("volume: corrupt data")
	// ErrFenced: another writer (another gateway, or a copy of this data
	// dir) has published the volume's head; this engine no longer takes
	// writes for it. Also control.ErrVolumeNotReady.
	ErrFenced error = &sentinel{"volume: fenced by another writer", []error{control.ErrVolumeNotReady}}
	// ErrStateLost: the engine's state file is gone while its data dir
	// shows it was in use (see loadState).
	ErrStateLost = errors.New("volume: engine state lost")
	// ErrNoDisks: I/O needs at least one cache disk and one upload-buffer disk.
	ErrNoDisks error = &sentinel{"volume: no cache or upload-buffer disk", []error{control.ErrNoDisks}}
	// ErrCacheDisk: a cache disk failed, or the cache was reset and no
	// cache disk was added since (cachereset.go). Also
	// control.ErrVolumeNotReady.
	ErrCacheDisk error = &sentinel{"volume: cache disk", []error{control.ErrVolumeNotReady}}
	// ErrClosed: the engine was closed.
	ErrClosed = errors.New("volume: engine closed")
	// ErrOutOfRange: an I/O outside the volume, or not 512-byte aligned.
	ErrOutOfRange = errors.New("volume: I/O out of range")
	// ErrInvalidSize: a volume size outside 1 GiB..32 TiB or smaller than its source.
	ErrInvalidSize error = &sentinel{"volume: invalid size", []error{control.ErrInvalidVolumeSize}}
	// ErrTooSmall: a volume smaller than the snapshot or volume it is
	// created from; also an ErrInvalidSize.
	ErrTooSmall error = &sentinel{"volume: smaller than its source", []error{ErrInvalidSize, control.ErrVolumeTooSmall}}
	// ErrExists: a volume or snapshot with the ID already exists.
	ErrExists = errors.New("volume: already exists")
	// ErrVolumeExists and ErrSnapshotExists say which; both are ErrExists.
	ErrVolumeExists   error = &sentinel{"volume: volume already exists", []error{ErrExists, control.ErrVolumeExists}}
	ErrSnapshotExists error = &sentinel{"volume: snapshot already exists", []error{ErrExists, control.ErrSnapshotExists}}
	// ErrNotReady: the volume cannot take the operation in its condition
	// (IRRECOVERABLE after its upload buffer lost acknowledged writes). To
	// an initiator the volume is then write-protected: it serves its
	// recovery point, and retrying would not help.
	ErrNotReady error = &sentinel{"volume: not ready", []error{control.ErrVolumeNotReady, scsi.ErrReadOnly}}
	// ErrLeaseExpired: an operation took longer than its GC lease and was abandoned.
	ErrLeaseExpired = errors.New("volume: GC lease expired")
)

// sentinel is an error of this package that is also the control plane's
// sentinel (or a more general one of ours) for the same condition, so that
// control maps it to an API error without importing this package.
type sentinel struct {
	msg string
	is  []error
}

func (e *sentinel) Error() string   { return e.msg }
func (e *sentinel) Unwrap() []error { return e.is }
