package volume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/control"
)

// Fencing: how a data dir tells its own head from another writer's.
//
// Every PUT of a volume's head (create, cut, delete) carries a fresh random
// token, and the root it names is stored under a key holding that token,
// so two writers never overwrite each other's roots. Before the PUT the
// engine records the token in the volume's file, <Dir>/volumes/<id>.json
// (one small atomic write per publish, whatever the number of volumes).
// Invariant (fencing): a head is this data dir's own iff its token is one
// that file recorded — the last head it confirmed, or the one it was
// publishing (whose PUT may have landed with its answer lost, or just
// before a crash).
//
// A copy of the data dir running beside the original records different
// tokens from then on: the first of the two to publish wins, the other's
// If-Match PUT fails and the head it then reads is not its own, so it is
// fenced. A data dir restored from an old backup finds at Open a head it
// never wrote: fenced too. An owner ID cannot tell these apart (a copy has
// the same one), a token can.
//
// A fenced volume refuses writes, flushes, cuts, snapshots and its recovery
// point with errors wrapping ErrFenced (so control.ErrVolumeNotReady: the
// initiator gets CHECK CONDITION, the API VolumeNotReady). Reads go on,
// from its own last root and the journal records after it, which are never
// released, so what this data dir holds can still be copied off. The fence
// is persisted in the volume file (it survives a restart) and logged at
// ERROR with the reason. DeleteVolume removes the volume locally without
// touching the head, which is no longer its own, and frees its journal.
//
// The same file records intents for crash-atomic CreateVolume and
// DeleteVolume: it is written before the head PUT, so at Open (or at a
// retried CreateVolume) a head carrying its token is adopted as this data
// dir's, and a tombstone carrying it completes the delete (resolveIntents).

// volFile is <Dir>/volumes/<id>.json.
type volFile struct {
	Volume volState `json:"volume"`
	Owner  string   `json:"owner"`
	// Seq and Token name the last head this data dir confirmed as its own
	// ("" for a head written before tokens existed).
	Seq   uint64 `json:"seq"`
	Token string `json:"token"`
	// NextSeq and NextToken name the head it is publishing or last
	// published (the file is written before each PUT, not after).
	NextSeq   uint64 `json:"nextSeq"`
	NextToken string `json:"nextToken"`
	// Deleting: the head being published is a tombstone.
	Deleting bool `json:"deleting,omitempty"`
	// Detaching: the head being published releases the volume (a
	// detached head naming root Seq/Token, attach.go).
	Detaching bool `json:"detaching,omitempty"`
	// Fenced says why the volume is fenced; "" if it is not.
	Fenced string `json:"fenced,omitempty"`
}

// owns reports whether h is a head this data dir wrote. A head without a
// token predates tokens: it is taken as ours if our owner ID wrote it and
// we have confirmed no tokened head since.
func (f *volFile) owns(h head) bool {
	if h.Detached {
		// It names our last root's token, but it released the volume:
		// nobody owns it until an AttachVolume takes it.
		return false
	}
	if h.Token == "" {
		return f.Token == "" && h.Owner == f.Owner
	}
	return h.Token == f.Token || h.Token == f.NextToken
}

func newToken() string { return randomHex(8) }

func (e *Engine) volFilePath(id string) string {
	return filepath.Join(e.cfg.Dir, "volumes", id+".json")
}

func (e *Engine) readVolFile(id string) (volFile, bool, error) {
	var f volFile
	b, err := os.ReadFile(e.volFilePath(id))
	if errors.Is(err, os.ErrNotExist) {
		return f, false, nil
	}
	if err != nil {
		return f, false, fmt.Errorf("volume: reading %s: %w", e.volFilePath(id), err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, false, fmt.Errorf("%w: %s: %v", ErrCorrupt, e.volFilePath(id), err)
	}
	return f, true, nil
}

func (e *Engine) writeVolFile(f *volFile) error {
	if err := os.MkdirAll(filepath.Dir(e.volFilePath(f.Volume.ID)), 0o700); err != nil {
		return fmt.Errorf("volume: %w", err)
	}
	b, _ := json.MarshalIndent(f, "", "  ")
	return writeFileAtomic(e.volFilePath(f.Volume.ID), b)
}

func (e *Engine) removeVolFile(id string) error {
	if err := os.Remove(e.volFilePath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("volume: %w", err)
	}
	return nil
}

// volFileIDs lists the volumes that have a file.
func (e *Engine) volFileIDs() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(e.cfg.Dir, "volumes"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("volume: %w", err)
	}
	var ids []string
	for _, d := range ents {
		if id, ok := strings.CutSuffix(d.Name(), ".json"); ok && d.Type().IsRegular() {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// notePublishing records, before the PUT, the head about to be published
// over base (the volume's confirmed head). v.cutMu held.
func (e *Engine) notePublishing(v *Volume, base *root, seq uint64, token string, deleting bool) error {
	f := v.vf
	f.Volume = v.state()
	f.Owner = e.state.Owner
	f.Seq, f.Token = base.Seq, base.Token
	f.NextSeq, f.NextToken, f.Deleting = seq, token, deleting
	if err := e.writeVolFile(&f); err != nil {
		return err
	}
	v.vf = f
	return nil
}

// fence stops the volume taking writes because its head is not its own,
// persists why and says so at ERROR. v.cutMu held (or Open, alone).
func (e *Engine) fence(v *Volume, reason string) {
	v.mu.Lock()
	already := v.fenced != nil
	if !already {
		v.fenced = fmt.Errorf("%w: %s: %s", ErrFenced, v.id, reason)
		v.publishRecovery()
	}
	v.mu.Unlock()
	if already {
		return
	}
	// Writers of the volume waiting for journal space give up: its records
	// are never released now, so the space they wait for may never come.
	v.fencedCancel()
	v.vf.Fenced = reason
	if v.vf.Volume.ID == "" {
		v.vf.Volume = v.state()
		v.vf.Owner = e.state.Owner
	}
	err := e.writeVolFile(&v.vf)
	e.log.Error("volume: fenced: this gateway no longer accepts writes, flushes or snapshots for the volume; "+
		"reads still serve what this data dir holds (copy it off, then delete the volume here)",
		"volume", v.id, "reason", reason, "persisted", err == nil, "err", err)
}

// Fenced reports why the volume is fenced (an error wrapping ErrFenced and
// control.ErrVolumeNotReady), or nil if it is not. A fenced volume serves
// reads but refuses writes, flushes, snapshots and its recovery point.
func (v *Volume) Fenced() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.fenced
}

// LocalVolumes implements control.VolumeLister: every volume this engine
// holds, fenced ones included.
func (e *Engine) LocalVolumes(ctx context.Context) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	ids := make([]string, 0, len(e.vols))
	for id := range e.vols {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

var _ control.VolumeLister = (*Engine)(nil)

// resolveIntents, at Open, finishes what a crash interrupted between a
// head PUT and state.json: a create whose head carries the token its file
// recorded is adopted, one whose head never landed is forgotten; a delete
// whose tombstone landed is completed. Then every volume in state.json is
// one the store agrees on, or fenced later by openHead.
func (e *Engine) resolveIntents(ctx context.Context) error {
	ids, err := e.volFileIDs()
	if err != nil {
		return err
	}
	changed := false
	for _, id := range ids {
		f, ok, err := e.readVolFile(id)
		if err != nil || !ok {
			return err
		}
		known := slices.ContainsFunc(e.state.Volumes, func(s volState) bool { return s.ID == id })
		if known && !f.Deleting && !f.Detaching {
			continue
		}
		h, _, err := e.getHead(ctx, id)
		notFound := errors.Is(err, blob.ErrNotFound)
		if err != nil && !notFound {
			return fmt.Errorf("volume: resolving %s: %w", id, err)
		}
		mine := !notFound && h.Token != "" && h.Token == f.NextToken
		switch {
		case known && f.Detaching && mine && h.Detached:
			e.log.Warn("volume: completing a detach interrupted by a crash", "volume", id)
			e.state.Volumes = slices.DeleteFunc(e.state.Volumes, func(s volState) bool { return s.ID == id })
			changed = true
			if err := e.removeVolFile(id); err != nil {
				return err
			}
		case known && f.Detaching:
			// The detached head never landed: the volume stays attached
			// here, with every acknowledged write in its journal.
			f.Detaching = false
			if err := e.writeVolFile(&f); err != nil {
				return err
			}
		case known && mine && h.Deleted:
			e.log.Warn("volume: completing a delete interrupted by a crash", "volume", id)
			e.state.Volumes = slices.DeleteFunc(e.state.Volumes, func(s volState) bool { return s.ID == id })
			changed = true
			if err := e.removeVolFile(id); err != nil {
				return err
			}
		case known:
			// The tombstone never landed: the volume stays; the control
			// plane's reconciliation deletes it again if its catalog no
			// longer names it.
			f.Deleting = false
			f.NextSeq, f.NextToken = f.Seq, f.Token
			if err := e.writeVolFile(&f); err != nil {
				return err
			}
		case mine && !h.Deleted && !h.Detached && f.Volume.ID == id && f.Fenced == "":
			// A create, or an AttachVolume (attach.go), whose head landed.
			e.log.Warn("volume: adopting a volume whose creation or attachment a crash interrupted", "volume", id)
			e.state.Volumes = append(e.state.Volumes, f.Volume)
			changed = true
		default:
			if err := e.removeVolFile(id); err != nil {
				return err
			}
		}
	}
	if changed {
		return e.saveState()
	}
	return nil
}

// adoptCreate is CreateVolume's retry after a failure past the head PUT: a
// file for the volume names a head this data dir wrote, so the volume is
// registered as created. It reports whether it did. Not found or not ours,
// the file is removed and the create goes on.
func (e *Engine) adoptCreate(ctx context.Context, spec control.VolumeSpec) (bool, error) {
	f, ok, err := e.readVolFile(spec.VolumeID)
	if err != nil || !ok {
		return false, err
	}
	h, etag, err := e.getHead(ctx, spec.VolumeID)
	if err != nil && !errors.Is(err, blob.ErrNotFound) {
		return false, err
	}
	if err != nil || h.Deleted || h.Token == "" || h.Token != f.NextToken || f.Fenced != "" {
		return false, e.removeVolFile(spec.VolumeID)
	}
	if f.Volume.Size != spec.SizeBytes {
		return false, fmt.Errorf("%w: %s (created by an earlier attempt with %d bytes)", ErrVolumeExists, spec.VolumeID, f.Volume.Size)
	}
	r, err := e.loadRoot(ctx, h.rootKey(spec.VolumeID))
	if err != nil {
		return false, err
	}
	v, err := newVolume(e, f.Volume)
	if err != nil {
		return false, err
	}
	v.base, v.headETag, v.vf = r, etag, f
	v.cleanAt = f.Volume.Created
	v.publishRecovery()
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, exists := e.vols[spec.VolumeID]; exists {
		return false, fmt.Errorf("%w: %s", ErrVolumeExists, spec.VolumeID)
	}
	e.state.Volumes = append(e.state.Volumes, f.Volume)
	if err := e.saveState(); err != nil {
		e.state.Volumes = e.state.Volumes[:len(e.state.Volumes)-1]
		return false, err
	}
	e.vols[spec.VolumeID] = v
	e.publishVols()
	return true, nil
}

// openHead, at Open, decides whether the volume's head is this data dir's
// and returns the root to serve the volume from: the head's if it is, else
// (fenced: why) this data dir's own last root, so that reads return what it
// holds. A missing own root (swept by GC) is returned as nil.
func (e *Engine) openHead(ctx context.Context, v *Volume) (base *root, etag, fenced string, err error) {
	f, ok, err := e.readVolFile(v.id)
	if err != nil {
		return nil, "", "", err
	}
	h, etag, err := e.getHead(ctx, v.id)
	if err != nil && !errors.Is(err, blob.ErrNotFound) {
		return nil, "", "", err
	}
	headMissing := err != nil
	if !ok {
		// A volume from before volume files existed: its heads have no
		// token; from now on the file tracks them.
		f = volFile{Volume: v.state(), Owner: e.state.Owner, Seq: h.Seq, NextSeq: h.Seq}
		if headMissing || h.Token != "" || h.Owner != e.state.Owner {
			f.Seq, f.NextSeq = 0, 0
		}
		if err := e.writeVolFile(&f); err != nil {
			return nil, "", "", err
		}
	}
	v.vf = f
	switch {
	case f.Fenced != "":
		fenced = f.Fenced
	case headMissing:
		fenced = "the volume's head is missing from the object store"
	case h.Deleted:
		fenced = fmt.Sprintf("the volume was deleted in the object store by %q", h.Owner)
	case h.Detached:
		fenced = fmt.Sprintf("the volume was detached by %q at %s (this data dir is older than that DetachVolume): "+
			"attach it with AttachVolume instead", h.Owner, h.DetachedAt.Format(time.RFC3339))
	case !f.owns(h):
		fenced = fmt.Sprintf("the object store's head of the volume (seq %d, written by %q, token %q) was not written by this data dir, "+
			"whose last head is seq %d (token %q): another writer has published the volume since "+
			"(a copy of this data dir, this data dir restored from an older backup, or another gateway)",
			h.Seq, h.Owner, h.Token, f.NextSeq, f.NextToken)
	}
	if fenced == "" {
		r, err := e.loadRoot(ctx, h.rootKey(v.id))
		return r, etag, "", err
	}
	// Our own newest root. The one being published (written before the
	// file names it) is always a valid base: the journal keeps every record
	// of the volume after it. The confirmed one before it is valid only if
	// the journal still holds every record after it: if the newer root's
	// PUT landed, the journal may have been released past it, and with the
	// newer root swept by GC it would read stale.
	if !ok && f.Token == "" && f.Seq == 0 && f.NextSeq == 0 {
		return nil, "", fenced, nil // no idea which root was ours
	}
	e.jr.mu.Lock()
	tail := e.jr.sb.TailLSN
	e.jr.mu.Unlock()
	for i, k := range []string{rootKey(v.id, f.NextSeq, f.NextToken), rootKey(v.id, f.Seq, f.Token)} {
		r, err := e.loadRoot(ctx, k)
		if err == nil && r.Volume == v.id && (i == 0 || r.JournalLSN >= tail) {
			return r, "", fenced, nil
		}
		if err != nil && !errors.Is(err, blob.ErrNotFound) {
			return nil, "", "", err
		}
	}
	return nil, "", fenced, nil
}
