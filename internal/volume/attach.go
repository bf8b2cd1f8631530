package volume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/control"
)

// Moving a volume between engines that share an object store.
//
// DetachVolume publishes a last root holding every acknowledged write and
// replaces the head, If-Match, with a detached head: the same Seq and Token
// (so it names that root, which GC therefore keeps, G2) and Detached set.
// A detached head is nobody's (volFile.owns): a copy of this data dir, or
// this one restored from a backup, is fenced by it at Open like by any
// head it did not write.
//
// AttachVolume, on any engine sharing the store, copies the detached head's
// root under a new token and Seq+1 (the same pages: GC rule G3a holds, the
// detached head naming the source until the new head names the copy, and
// the attach is abandoned past the lease like a create), records the token
// in the volume's file, then replaces the head If-Match its ETag. Two
// engines attaching at once both PUT If-Match the same ETag: one wins, the
// other finds a head it did not write and gives up (ErrVolumeInUse).
//
// Crash points, and what Open (resolveIntents) makes of them:
//   - detach, before the intent is written, or with the intent but the
//     detached head not landed: the volume stays attached, its journal
//     replayed, nothing lost;
//   - detach, head landed (answer lost or not) but state.json not yet
//     updated: the intent's token matches the detached head, the detach is
//     completed, and the journal records of the volume (all in its last
//     root) are ignored;
//   - attach, before the head PUT landed: the file names a token the head
//     does not carry, it is removed, the volume stays detached;
//   - attach, head landed: the file's token is the head's, the volume is
//     adopted exactly like an interrupted create.

// DetachVolume implements control.VolumeMover.
func (e *Engine) DetachVolume(ctx context.Context, volumeID string, note []byte) error {
	v, err := e.Volume(volumeID)
	if err != nil {
		return err
	}
	v.mu.Lock()
	if err := v.usable(); err != nil {
		v.mu.Unlock()
		return err
	}
	if c := v.cond; c != nil && c.Status == control.VolumeIrrecoverable {
		// Its acknowledged writes are known lost: moving it would show it
		// whole elsewhere. The way back is a snapshot of its recovery
		// point, as for any IRRECOVERABLE volume.
		v.mu.Unlock()
		return fmt.Errorf("%w: %s is %s: %s", ErrNotReady, v.id, c.Status, c.Reason)
	}
	v.detaching = true
	v.mu.Unlock()
	released := false
	defer func() {
		if !released {
			v.mu.Lock()
			v.detaching = false
			v.mu.Unlock()
		}
	}()
	// No write is applied from now on (writable), so cutting until nothing
	// is dirty or in flight publishes every write applied before: every
	// acknowledged one, flushed or not.
	// A root from before tokens existed is published again with one, so
	// that the detached head names a token this data dir recorded.
	for {
		v.mu.Lock()
		force := v.base.Token == ""
		v.mu.Unlock()
		if err := e.cutVolume(ctx, v, force); err != nil {
			return err
		}
		v.cutMu.Lock()
		v.mu.Lock()
		if v.cut == nil && len(v.dirty) == 0 && v.base.Token != "" {
			break // both locks held: the head stays base until released
		}
		v.mu.Unlock()
		v.cutMu.Unlock()
	}
	base, etag, fenced := v.base, v.headETag, v.fenced
	v.mu.Unlock()
	defer v.cutMu.Unlock()
	if fenced != nil {
		return fenced
	}
	// The intent first: a crash after the PUT completes the detach at Open.
	if err := e.noteDetaching(v, base, true); err != nil {
		return err
	}
	now := e.now().UTC()
	hb, _ := json.Marshal(head{Seq: base.Seq, Owner: e.state.Owner, Token: base.Token, Detached: true, DetachedAt: now, Note: note})
	_, err = e.store.Put(ctx, headKey(v.id), hb, blob.PutOptions{IfMatch: etag})
	if err != nil {
		// Did it land? A precondition failure after a lost answer, or any
		// error of the PUT itself: the head says.
		h, _, herr := e.getHead(ctx, v.id)
		switch {
		case herr != nil:
			// Unknown: the intent stays, writes stay refused; a retry or
			// the next Open decides.
			released = true
			return fmt.Errorf("volume: detaching %s: %w (and reading the head: %v)", v.id, err, herr)
		case h.Detached && h.Token == base.Token:
			// Ours.
		case errors.Is(err, blob.ErrPreconditionFailed):
			e.fence(v, fmt.Sprintf("detaching: the head is now seq %d of %q (token %q), not this data dir's", h.Seq, h.Owner, h.Token))
			return errors.Join(v.Fenced(), e.noteDetaching(v, base, false))
		default:
			return errors.Join(fmt.Errorf("volume: detaching %s: %w", v.id, err), e.noteDetaching(v, base, false))
		}
	}
	released = true
	return e.dropVolume(v)
}

// noteDetaching records (or, on, clears) the intent to publish a detached
// head over base. v.cutMu held.
func (e *Engine) noteDetaching(v *Volume, base *root, on bool) error {
	if err := e.notePublishing(v, base, base.Seq, base.Token, false); err != nil {
		return err
	}
	v.vf.Detaching = on
	return e.writeVolFile(&v.vf)
}

// dropVolume lets a volume's local state go once its head is no longer
// this engine's to keep (detached). v.cutMu held.
func (e *Engine) dropVolume(v *Volume) error {
	e.mu.Lock()
	delete(e.vols, v.id)
	e.publishVols()
	e.state.Volumes = slices.DeleteFunc(e.state.Volumes, func(s volState) bool { return s.ID == v.id })
	err := e.saveState()
	e.mu.Unlock()
	if err == nil {
		err = e.removeVolFile(v.id)
	}
	v.mu.Lock()
	v.deleted = true
	v.dropAll()
	v.mu.Unlock()
	e.releaseJournal()
	return err
}

// DetachedVolume implements control.VolumeMover.
func (e *Engine) DetachedVolume(ctx context.Context, volumeID string) (control.DetachedVolume, error) {
	d, _, _, err := e.detachedHead(ctx, volumeID)
	return d, err
}

func (e *Engine) detachedHead(ctx context.Context, volumeID string) (control.DetachedVolume, head, string, error) {
	if volumeID == "" || !blobSafe(volumeID) {
		return control.DetachedVolume{}, head{}, "", fmt.Errorf("%w: %q", control.ErrVolumeNotFound, volumeID)
	}
	h, etag, err := e.getHead(ctx, volumeID)
	switch {
	case errors.Is(err, blob.ErrNotFound):
		return control.DetachedVolume{}, h, "", fmt.Errorf("%w: %s has no head in the object store", control.ErrVolumeNotFound, volumeID)
	case err != nil:
		return control.DetachedVolume{}, h, "", err
	case h.Deleted:
		return control.DetachedVolume{}, h, "", fmt.Errorf("%w: %s was deleted", control.ErrVolumeNotFound, volumeID)
	case !h.Detached:
		return control.DetachedVolume{}, h, "", fmt.Errorf("%w: %s is attached (head seq %d written by %q)", control.ErrVolumeInUse, volumeID, h.Seq, h.Owner)
	}
	r, err := e.loadRoot(ctx, h.rootKey(volumeID))
	if errors.Is(err, control.ErrKeyUnavailable) {
		// Sealed with a key this gateway lacks: the note (clear, in the
		// head) still says which, for the refusal.
		return control.DetachedVolume{DetachedAt: h.DetachedAt, DetachedBy: h.Owner, Note: h.Note}, h, "", err
	}
	if err != nil {
		return control.DetachedVolume{}, h, "", err
	}
	return control.DetachedVolume{SizeBytes: r.Size, DetachedAt: h.DetachedAt, DetachedBy: h.Owner, Note: h.Note}, h, etag, nil
}

// AttachVolume implements control.VolumeMover.
func (e *Engine) AttachVolume(ctx context.Context, volumeID string) (control.DetachedVolume, error) {
	var none control.DetachedVolume
	e.mu.Lock()
	_, exists := e.vols[volumeID]
	noDisks := len(e.jr.disks) == 0 || e.cache.nslots() == 0
	e.mu.Unlock()
	if exists {
		return none, fmt.Errorf("%w: %s", control.ErrVolumeExists, volumeID)
	}
	if noDisks {
		return none, ErrNoDisks
	}
	if d, ok, err := e.adoptAttach(ctx, volumeID); ok || err != nil {
		return d, err
	}
	d, h, etag, err := e.detachedHead(ctx, volumeID)
	if err != nil {
		return none, err
	}
	start := e.now()
	src, err := e.loadRoot(ctx, h.rootKey(volumeID))
	if err != nil {
		return none, err
	}
	// The volume keeps its key: its next objects are sealed as its last.
	var keyName string
	if src.sealedWith != nil {
		keyName = src.sealedWith.Name()
	}
	w, err := e.writerFor(keyName)
	if err != nil {
		return none, err
	}
	token := newToken()
	r := &root{Volume: volumeID, Seq: h.Seq + 1, Size: src.Size, CutTime: src.CutTime, Owner: e.state.Owner, Token: token,
		JournalLSN: e.jr.headLSN(), Pages: maps.Clone(src.Pages), Parent: src.key(), Retain: e.cfg.RecoveryPointRetention}
	if err := e.putRoot(ctx, w, r, blob.PutOptions{}); err != nil {
		return none, err
	}
	if e.now().Sub(start) > e.lease() {
		return none, fmt.Errorf("%w: attaching %s", ErrLeaseExpired, volumeID)
	}
	// The intent, before the head (fencing invariant): a crash or a lost
	// answer after the PUT leaves a head this data dir knows as its own.
	vs := volState{ID: volumeID, Size: r.Size, Nonce: randomNonce(), Created: start, Key: keyName}
	vf := volFile{Volume: vs, Owner: e.state.Owner, Seq: r.Seq, Token: token, NextSeq: r.Seq, NextToken: token}
	if err := e.writeVolFile(&vf); err != nil {
		return none, err
	}
	hb, _ := json.Marshal(head{Seq: r.Seq, Owner: e.state.Owner, Token: token})
	info, err := e.store.Put(ctx, headKey(volumeID), hb, blob.PutOptions{IfMatch: etag})
	if err != nil {
		cur, curETag, herr := e.getHead(ctx, volumeID)
		switch {
		case herr != nil:
			// Unknown: the file stays; a retry or the next Open decides.
			return none, fmt.Errorf("volume: attaching %s: %w (and reading the head: %v)", volumeID, err, herr)
		case cur.Token == token && !cur.Detached && !cur.Deleted:
			info.ETag = curETag // ours: the answer was lost
		case errors.Is(err, blob.ErrPreconditionFailed):
			return none, errors.Join(fmt.Errorf("%w: %s was taken by %q meanwhile", control.ErrVolumeInUse, volumeID, cur.Owner),
				e.removeVolFile(volumeID))
		default:
			return none, errors.Join(fmt.Errorf("volume: attaching %s: %w", volumeID, err), e.removeVolFile(volumeID))
		}
	}
	return d, e.addAttached(vs, r, info.ETag, vf)
}

// adoptAttach is AttachVolume's retry after a failure past the head PUT:
// the volume's file names the head's token, so the attach landed.
func (e *Engine) adoptAttach(ctx context.Context, volumeID string) (control.DetachedVolume, bool, error) {
	var none control.DetachedVolume
	f, ok, err := e.readVolFile(volumeID)
	if err != nil || !ok {
		return none, false, err
	}
	h, etag, err := e.getHead(ctx, volumeID)
	if err != nil && !errors.Is(err, blob.ErrNotFound) {
		return none, false, err
	}
	if err != nil || h.Deleted || h.Detached || h.Token == "" || h.Token != f.NextToken || f.Fenced != "" {
		return none, false, e.removeVolFile(volumeID)
	}
	r, err := e.loadRoot(ctx, h.rootKey(volumeID))
	if err != nil {
		return none, false, err
	}
	e.log.Warn("volume: adopting a volume whose attachment was interrupted", "volume", volumeID)
	return control.DetachedVolume{SizeBytes: r.Size}, true, e.addAttached(f.Volume, r, etag, f)
}

// addAttached registers a volume whose head this engine now owns.
func (e *Engine) addAttached(vs volState, r *root, etag string, vf volFile) error {
	v, err := newVolume(e, vs)
	if err != nil {
		return err
	}
	v.base, v.headETag, v.vf = r, etag, vf
	v.cleanAt = vs.Created
	v.publishRecovery()
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, exists := e.vols[vs.ID]; exists {
		return fmt.Errorf("%w: %s", control.ErrVolumeExists, vs.ID)
	}
	e.state.Volumes = append(e.state.Volumes, vs)
	if err := e.saveState(); err != nil {
		e.state.Volumes = e.state.Volumes[:len(e.state.Volumes)-1]
		return err
	}
	e.vols[vs.ID] = v
	e.publishVols()
	return nil
}

var _ control.VolumeMover = (*Engine)(nil)

// DeleteDetachedVolume implements control.VolumeMover: the detached head
// becomes a tombstone (If-Match, so a volume attached meanwhile is not
// deleted), and GC reclaims what no snapshot uses.
func (e *Engine) DeleteDetachedVolume(ctx context.Context, volumeID string) error {
	_, h, etag, err := e.detachedHead(ctx, volumeID)
	if err != nil {
		return err
	}
	hb, _ := json.Marshal(head{Seq: h.Seq, Owner: e.state.Owner, Token: newToken(), Deleted: true, DeletedAt: e.now().UTC()})
	_, err = e.store.Put(ctx, headKey(volumeID), hb, blob.PutOptions{IfMatch: etag})
	if err == nil {
		return nil
	}
	// A lost answer, or another writer: the head says which.
	if _, _, _, herr := e.detachedHead(ctx, volumeID); herr != nil && errors.Is(herr, control.ErrVolumeNotFound) {
		return nil
	} else if errors.Is(herr, control.ErrVolumeInUse) {
		return herr
	}
	return fmt.Errorf("volume: deleting detached %s: %w", volumeID, err)
}
