package volume

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/control"
)

// Writing a snapshot block by block, for the EBS direct APIs
// (StartSnapshot, PutSnapshotBlock, CompleteSnapshot).
//
// StartImport writes a pending record (VolumeID vol-ffffffff, as AWS shows
// snapshots made this way). Each block put is stored content-addressed
// like a cut's (putContent: one copy of each content, reused while fresh)
// and then an entry object imports/<id>/<index>-<hash> with no body names
// it. CompleteImport lists the entries, builds pages over the parent's
// (a copy of its page with the blocks put applied), writes them and a
// root under volumes/<id>/roots/, and completes the record naming the
// root; then the entries go.
//
// GC safety: a put block is named by no root until completion, so the
// entries are what keeps it: GC marks every block an entry names while
// the import is pending (markImports, rule G2 extended). A put reuses an
// existing block only if it is fresh (G3c, from the put's start) and
// gives up if it ran longer than the lease L, and writes its entry after
// the block: so a round that listed the entries before this one existed
// started before put start + L, and its horizon M-G is before put start -
// L, older than the block's ModTime: the block is not swept. Completion is
// a clone of the parent (G3b: it finishes within L of reading the parent's
// record, whose tombstone would keep its root marked for G) and a cut for
// the pages it writes (G3c); its root is recent (marked by G2) until the
// completed record names it, and the entries are deleted only after that.

// ImportVolumeID is the VolumeId AWS shows for a snapshot made through
// the EBS direct APIs.
const ImportVolumeID = "vol-ffffffff"

// importInfo is kept in an imported snapshot's record.
type importInfo struct {
	Parent string `json:"parent,omitempty"`
	// Timeout: the import is cancelled (status error) when no block has
	// been put for this long (EBS's StartSnapshot Timeout).
	Timeout time.Duration `json:"timeout"`
}

// Errors of imports, for the EBS API to map.
var (
	// ErrSnapshotNotWritable: not a pending import (completed, failed, or
	// a volume's snapshot).
	ErrSnapshotNotWritable = errors.New("volume: snapshot is not a pending import")
	// ErrParentNotFound: the parent snapshot does not exist or is not
	// completed.
	ErrParentNotFound = errors.New("volume: parent snapshot not found")
	// ErrTokenConflict: the client token was used for a different import.
	ErrTokenConflict = errors.New("volume: client token reused with other parameters")
	// ErrChangedBlocksCount: CompleteImport's count is not the number of
	// blocks put.
	ErrChangedBlocksCount = errors.New("volume: changed blocks count does not match the blocks put")
	// ErrAggregateChecksum: CompleteImport's aggregate checksum does not
	// match the blocks put.
	ErrAggregateChecksum = errors.New("volume: aggregate checksum does not match the blocks put")
)

// ImportRequest starts an import.
type ImportRequest struct {
	SnapshotID  string // issued by the control plane
	SizeBytes   int64
	ParentID    string
	Description string
	Tags        []control.Tag
	// ClientToken makes StartImport idempotent: the same token with the
	// same parameters returns the same snapshot.
	ClientToken string
	Timeout     time.Duration
}

func importEntriesPrefix(id string) string { return "imports/" + id + "/" }

func importEntryPrefix(id string, index int64) string {
	return fmt.Sprintf("imports/%s/%010d-", id, index)
}

func importTokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return fmt.Sprintf("importtokens/%x.json", sum)
}

type importTokenJSON struct {
	SnapshotID string `json:"snapshotId"`
	Params     string `json:"params"` // hash of the request's parameters
}

func (r ImportRequest) paramsHash() string {
	b, _ := json.Marshal([]any{r.SizeBytes, r.ParentID, r.Description, r.Tags, r.Timeout})
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%x", sum[:16])
}

// StartImport creates a pending snapshot to put blocks into; with a
// client token already used for the same parameters it returns that
// snapshot instead.
func (e *Engine) StartImport(ctx context.Context, req ImportRequest) (control.Snapshot, error) {
	if req.SnapshotID == "" || blob.ValidateKey(snapshotKey(req.SnapshotID)) != nil || strings.Contains(req.SnapshotID, "/") {
		return control.Snapshot{}, fmt.Errorf("volume: bad snapshot ID %q", req.SnapshotID)
	}
	if req.SizeBytes < BlockSize || req.SizeBytes > MaxVolumeSize {
		return control.Snapshot{}, fmt.Errorf("%w: %d bytes", ErrInvalidSize, req.SizeBytes)
	}
	if req.ClientToken != "" {
		b, _ := json.Marshal(importTokenJSON{SnapshotID: req.SnapshotID, Params: req.paramsHash()})
		_, err := e.store.Put(ctx, importTokenKey(req.ClientToken), b, blob.PutOptions{IfNoneMatch: true})
		if errors.Is(err, blob.ErrPreconditionFailed) {
			b, err := e.store.Get(ctx, importTokenKey(req.ClientToken))
			if err != nil {
				return control.Snapshot{}, fmt.Errorf("volume: import token: %w", err)
			}
			var tok importTokenJSON
			if err := json.Unmarshal(b, &tok); err != nil {
				return control.Snapshot{}, fmt.Errorf("%w: import token: %v", ErrCorrupt, err)
			}
			if tok.Params != req.paramsHash() {
				return control.Snapshot{}, ErrTokenConflict
			}
			rec, _, err := e.getRecord(ctx, tok.SnapshotID)
			if err == nil {
				return rec.public(), nil
			}
			if !errors.Is(err, control.ErrSnapshotNotFound) {
				return control.Snapshot{}, err
			}
			// The first request stopped between its token and its
			// record: this one writes the record.
			req.SnapshotID = tok.SnapshotID
		} else if err != nil {
			return control.Snapshot{}, fmt.Errorf("volume: import token: %w", err)
		}
	}
	if req.ParentID != "" {
		parent, err := e.readRecord(ctx, req.ParentID)
		if errors.Is(err, control.ErrSnapshotNotFound) {
			return control.Snapshot{}, fmt.Errorf("%w: %s", ErrParentNotFound, req.ParentID)
		}
		if err != nil {
			return control.Snapshot{}, err
		}
		if parent.Status != string(control.SnapshotCompleted) {
			return control.Snapshot{}, fmt.Errorf("%w: %s is %s", ErrParentNotFound, req.ParentID, parent.Status)
		}
		if parent.SizeBytes > req.SizeBytes {
			return control.Snapshot{}, fmt.Errorf("%w: parent %s has %d bytes", ErrTooSmall, req.ParentID, parent.SizeBytes)
		}
	}
	rec := &snapRecord{ID: req.SnapshotID, VolumeID: ImportVolumeID, SizeBytes: req.SizeBytes, StartTime: e.now().UTC(),
		Description: req.Description, Tags: slices.Clone(req.Tags), Status: string(control.SnapshotPending), Owner: e.state.Owner,
		Import: &importInfo{Parent: req.ParentID, Timeout: req.Timeout}}
	b, _ := json.Marshal(rec)
	if _, err := e.store.Put(ctx, snapshotKey(rec.ID), b, blob.PutOptions{IfNoneMatch: true}); err != nil {
		if errors.Is(err, blob.ErrPreconditionFailed) {
			return control.Snapshot{}, fmt.Errorf("%w: snapshot %s", ErrSnapshotExists, rec.ID)
		}
		return control.Snapshot{}, fmt.Errorf("volume: snapshot %s: %w", rec.ID, err)
	}
	return rec.public(), nil
}

// ImportParent returns the parent of an imported snapshot ("" for none).
func (e *Engine) ImportParent(ctx context.Context, id string) (string, error) {
	rec, err := e.readRecord(ctx, id)
	if err != nil {
		return "", err
	}
	if rec.Import == nil {
		return "", nil
	}
	return rec.Import.Parent, nil
}

// pendingImport reads id's record and checks blocks may be put into it.
func (e *Engine) pendingImport(ctx context.Context, id string) (*snapRecord, error) {
	rec, err := e.readRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec.Import == nil || rec.Status != string(control.SnapshotPending) {
		return nil, fmt.Errorf("%w: %s is %s", ErrSnapshotNotWritable, id, rec.Status)
	}
	return rec, nil
}

// PutImportBlock stores block index of the pending import id. data is
// BlockSize bytes whose SHA-256 is sum (the caller checked it). A block
// of zeros is not stored: its entry says the block is zeros (clearing
// the parent's). progress (0..100, or -1) is what DescribeSnapshots shows.
func (e *Engine) PutImportBlock(ctx context.Context, id string, index int64, data []byte, sum [32]byte, progress int) error {
	rec, err := e.pendingImport(ctx, id)
	if err != nil {
		return err
	}
	if index < 0 || index >= (rec.SizeBytes+BlockSize-1)/BlockSize {
		return fmt.Errorf("%w: block %d of %s", ErrOutOfRange, index, id)
	}
	if len(data) != BlockSize {
		return fmt.Errorf("%w: %d bytes for block %d", ErrOutOfRange, len(data), index)
	}
	start := e.now()
	h := hash(sum)
	if bytes.Equal(data, zeroBlock) {
		h = hash{}
	} else if _, err := e.putSealed(ctx, e.importWriter(), blockKey(h), data, BlockSize, start, &sum); err != nil {
		return err
	}
	// GC safety (top of file): the entry is written within the lease of
	// the put's start, or not at all.
	if e.now().Sub(start) > e.lease() {
		return fmt.Errorf("%w: block %d of %s", ErrLeaseExpired, index, id)
	}
	prefix := importEntryPrefix(id, index)
	key := prefix + h.String()
	if err := e.put(ctx, key, []byte{}, blob.PutOptions{}); err != nil {
		return err
	}
	// A block put again replaces the one put before at that index.
	var stale []string
	if err := e.store.List(ctx, prefix, func(o blob.ObjectInfo) error {
		if o.Key != key {
			stale = append(stale, o.Key)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("volume: listing %s: %w", prefix, err)
	}
	for _, k := range stale {
		if err := e.store.Delete(ctx, k); err != nil && !errors.Is(err, blob.ErrNotFound) {
			return fmt.Errorf("volume: delete %s: %w", k, err)
		}
	}
	if progress >= 0 {
		e.ebs.progress.Store(id, progress)
	}
	return nil
}

// importEntry is one listed entry: a block put.
type importEntry struct {
	index   int64
	h       hash
	key     string
	modTime time.Time
}

// listImportEntries lists the blocks put into import id, by index.
func (e *Engine) listImportEntries(ctx context.Context, id string) ([]importEntry, error) {
	var out []importEntry
	err := e.store.List(ctx, importEntriesPrefix(id), func(o blob.ObjectInfo) error {
		ent, ok := parseImportEntry(o)
		if ok {
			out = append(out, ent)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("volume: listing the blocks of %s: %w", id, err)
	}
	slices.SortFunc(out, func(a, b importEntry) int { return int(a.index - b.index) })
	return out, nil
}

// parseImportEntry parses imports/<id>/<index>-<hash>.
func parseImportEntry(o blob.ObjectInfo) (importEntry, bool) {
	rest, ok := strings.CutPrefix(o.Key, "imports/")
	if !ok {
		return importEntry{}, false
	}
	_, name, ok := strings.Cut(rest, "/")
	if !ok {
		return importEntry{}, false
	}
	idx, hs, ok := strings.Cut(name, "-")
	if !ok {
		return importEntry{}, false
	}
	i, err := strconv.ParseInt(idx, 10, 64)
	if err != nil {
		return importEntry{}, false
	}
	h, err := parseHash(hs)
	if err != nil {
		return importEntry{}, false
	}
	return importEntry{index: i, h: h, key: o.Key, modTime: o.ModTime}, true
}

// CompleteImport writes the import's pages and root and completes it.
// changed must be the number of blocks put; aggregate, if not nil, the
// SHA-256 of the blocks' SHA-256s in index order (EBS's LINEAR
// aggregation). Completing a completed import again is a no-op.
func (e *Engine) CompleteImport(ctx context.Context, id string, changed int, aggregate *[32]byte) (control.Snapshot, error) {
	rec, _, err := e.getRecord(ctx, id)
	if err != nil {
		return control.Snapshot{}, err
	}
	if rec.Deleted {
		return control.Snapshot{}, fmt.Errorf("%w: %s", control.ErrSnapshotNotFound, id)
	}
	if rec.Import != nil && rec.Status == string(control.SnapshotCompleted) {
		return rec.public(), nil
	}
	if rec.Import == nil || rec.Status != string(control.SnapshotPending) {
		return control.Snapshot{}, fmt.Errorf("%w: %s is %s", ErrSnapshotNotWritable, id, rec.Status)
	}
	start := e.now()
	entries, err := e.listImportEntries(ctx, id)
	if err != nil {
		return control.Snapshot{}, err
	}
	// Two entries at one index: puts racing (the later one deletes the
	// other): the count is of indexes.
	byIndex := map[int64]hash{}
	for _, ent := range entries {
		byIndex[ent.index] = ent.h
	}
	if len(byIndex) != changed {
		return control.Snapshot{}, fmt.Errorf("%w: %d given, %d put", ErrChangedBlocksCount, changed, len(byIndex))
	}
	if aggregate != nil {
		agg := sha256.New()
		for _, i := range slices.Sorted(maps.Keys(byIndex)) {
			h := byIndex[i]
			if h.isZero() {
				h = sha256.Sum256(zeroBlock)
			}
			agg.Write(h[:])
		}
		if [32]byte(agg.Sum(nil)) != *aggregate {
			return control.Snapshot{}, ErrAggregateChecksum
		}
	}
	pages := map[uint32]pageRef{}
	if rec.Import.Parent != "" {
		parent, err := e.OpenSnapshotTree(ctx, rec.Import.Parent)
		if err != nil {
			return control.Snapshot{}, fmt.Errorf("%w: %s: %v", ErrParentNotFound, rec.Import.Parent, err)
		}
		maps.Copy(pages, parent.r.Pages)
	}
	// GC rule G3c: the pages written or reused below are protected by a
	// lease with checkpoints (gclease.go), however many there are.
	ctx, lease := e.startCutLease(ctx, id, 0)
	defer lease.end(ctx, false)
	byPage := map[uint32][]int64{}
	for i := range byIndex {
		byPage[uint32(i/pageBlocks)] = append(byPage[uint32(i/pageBlocks)], i)
	}
	for pi, idxs := range byPage {
		p := emptyPage()
		if ref, ok := pages[pi]; ok {
			old, err := e.loadPage(ctx, ref.Hash)
			if err != nil {
				return control.Snapshot{}, err
			}
			p = old.clone()
		}
		for _, i := range idxs {
			p.set(uint16(i%pageBlocks), blockRef{Base: byIndex[i]}) // zero: a touched zero block
		}
		enc := encodePage(p)
		sum := sha256.Sum256(enc)
		if _, err := e.putSealed(ctx, e.importWriter(), pageKey(sum), enc, -1, start, &sum); err != nil {
			return control.Snapshot{}, err
		}
		pages[pi] = pageRef{Hash: sum, Blocks: p.nonZero(), Touched: p.touched()}
	}
	lease.stop()
	var parentRead time.Time
	if rec.Import.Parent != "" {
		// GC rule G3b, for the parent's pages the root names: the root is
		// written within the lease of this read of the parent's record.
		if _, err := e.OpenSnapshotTree(ctx, rec.Import.Parent); err != nil {
			return control.Snapshot{}, fmt.Errorf("%w: %s: %v", ErrParentNotFound, rec.Import.Parent, err)
		}
		parentRead = e.now()
	}
	now := e.now()
	r := &root{Volume: id, Size: rec.SizeBytes, CutTime: now.UTC(), Owner: e.state.Owner, Token: newToken(), Pages: pages}
	if err := e.putRoot(ctx, e.importWriter(), r, blob.PutOptions{IfNoneMatch: true}); err != nil {
		return control.Snapshot{}, fmt.Errorf("volume: root of %s: %w", id, err)
	}
	// GC rules G3b and G3c: the root landed within the lease of the
	// parent's read and before the pages' protection ran out, and the
	// record names it while it is young enough to be marked.
	if err := lease.landedAll(now, e.now()); err != nil {
		return control.Snapshot{}, fmt.Errorf("completing %s: %w", id, err)
	}
	if !parentRead.IsZero() && e.now().Sub(parentRead) > e.lease() || e.now().Sub(now) > e.lease()-e.gcSkewLimit() {
		return control.Snapshot{}, fmt.Errorf("%w: completing %s", ErrLeaseExpired, id)
	}
	var out control.Snapshot
	err = e.updateRecord(ctx, id, func(rec *snapRecord) error {
		if rec.Deleted {
			return fmt.Errorf("%w: %s", control.ErrSnapshotNotFound, id)
		}
		if rec.Status != string(control.SnapshotPending) {
			return fmt.Errorf("%w: %s is %s", ErrSnapshotNotWritable, id, rec.Status)
		}
		rec.Status, rec.Root, rec.PointTime, rec.UsageBytes = string(control.SnapshotCompleted), r.key(), now.UTC(), r.usage()
		out = rec.public()
		return nil
	})
	if err != nil {
		return control.Snapshot{}, err
	}
	e.ebs.progress.Delete(id)
	// The root names every block now; the entries may go (GC removes any
	// left behind).
	for _, ent := range entries {
		if err := e.store.Delete(ctx, ent.key); err != nil && !errors.Is(err, blob.ErrNotFound) {
			e.log.Warn("volume: import entry left for GC", "key", ent.key, "err", err)
		}
	}
	return out, nil
}

// markImports is GC's mark for imports (rule G2, extended): every block
// an entry of a pending import names is marked. An import idle for its
// Timeout is cancelled (status error, as EBS cancels it); the entries of
// an import no longer pending (completed, cancelled, deleted) are
// removed. recs are the records GC listed; an import started after that
// listing is read here.
func (e *Engine) markImports(ctx context.Context, recs []*snapRecord, marked map[hash]struct{}) error {
	entries := map[string][]importEntry{}
	if err := e.store.List(ctx, "imports/", func(o blob.ObjectInfo) error {
		if ent, ok := parseImportEntry(o); ok {
			id, _, _ := strings.Cut(strings.TrimPrefix(o.Key, "imports/"), "/")
			entries[id] = append(entries[id], ent)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("volume: gc listing imports: %w", err)
	}
	byID := map[string]*snapRecord{}
	for _, r := range recs {
		if r.Import != nil && !r.Deleted {
			byID[r.ID] = r
		}
	}
	for id := range entries {
		if byID[id] == nil {
			r, err := e.readRecord(ctx, id)
			if err != nil && !errors.Is(err, control.ErrSnapshotNotFound) {
				return err
			}
			byID[id] = r // nil: gone
		}
	}
	now := e.now()
	for id, r := range byID {
		ents := entries[id]
		if r != nil && r.Import != nil && r.Status == string(control.SnapshotPending) {
			last := r.StartTime
			for _, ent := range ents {
				if ent.modTime.After(last) {
					last = ent.modTime
				}
			}
			if r.Import.Timeout <= 0 || now.Sub(last) < r.Import.Timeout {
				for _, ent := range ents {
					marked[ent.h] = struct{}{}
				}
				continue
			}
			err := e.updateRecord(ctx, id, func(rec *snapRecord) error {
				if rec.Status != string(control.SnapshotPending) {
					return errSkip
				}
				rec.Status = string(control.SnapshotError)
				return nil
			})
			if err != nil && !errors.Is(err, control.ErrSnapshotNotFound) {
				return err
			}
			e.ebs.progress.Delete(id)
			e.log.Info("volume: import timed out", "snapshot", id, "idle", now.Sub(last))
		}
		for _, ent := range ents {
			if err := e.store.Delete(ctx, ent.key); err != nil && !errors.Is(err, blob.ErrNotFound) {
				return fmt.Errorf("volume: gc: %w", err)
			}
		}
	}
	return nil
}

// sweepImportTokens deletes the ClientToken objects (importTokenKey) of
// snapshots that are gone or deleted: a token only answers a retried
// StartSnapshot with its snapshot, and a deleted snapshot has none to
// give. A token is kept while younger than the grace period, since
// StartImport writes it before the record (G3-like: the record it names
// may not exist yet). recs are the round's records, tombstones included.
func (e *Engine) sweepImportTokens(ctx context.Context, recs []*snapRecord, horizon time.Time) (int, error) {
	live := map[string]bool{}
	for _, r := range recs {
		if !r.Deleted {
			live[r.ID] = true
		}
	}
	var old []string
	if err := e.store.List(ctx, "importtokens/", func(o blob.ObjectInfo) error {
		if o.ModTime.Before(horizon) {
			old = append(old, o.Key)
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("volume: gc listing import tokens: %w", err)
	}
	n := 0
	for _, k := range old {
		b, err := e.store.Get(ctx, k)
		if errors.Is(err, blob.ErrNotFound) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("volume: gc: %w", err)
		}
		var tok importTokenJSON
		if json.Unmarshal(b, &tok) == nil && live[tok.SnapshotID] {
			continue
		}
		if err := e.store.Delete(ctx, k); err != nil {
			return n, fmt.Errorf("volume: gc: %w", err)
		}
		n++
	}
	return n, nil
}
