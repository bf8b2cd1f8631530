package volume

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/control"
)

// Recovery-point retention (continuous data protection).
//
// Every cut publishes a root; with Config.RecoveryPointRetention W > 0 the
// roots of a volume's history stay in the store for W after they stopped
// being the volume's state, so a snapshot (and from it a volume) can be
// made of any of them. What it costs is what those roots name and nothing
// newer does: the blocks and pages each cut rewrote (a root shares every
// other page with its parent).
//
// History, and why a fork is never offered. Each root names its parent:
// the root it was cut on top of, which was the published head when the
// cut began (root.Parent). A head is only ever replaced with If-Match on
// the ETag of the head its writer last published or read (fence.go), and
// an attach builds on the detached head's root, so following Parent from
// the current head's root visits exactly the roots that were published as
// the volume's head, newest first: its history. A root not on that chain
// is a fork and is neither listed nor kept past the grace period G:
//   - a cut whose head PUT never happened (a crash before it) or failed;
//   - a cut of a fenced writer: a copy of the data dir, one restored from
//     an older backup, or a gateway that lost the volume to another (its
//     head PUT found someone else's head; it names a parent that is
//     history, but no history root names it);
//   - a head-less root of a create, clone or attach that never published.
//
// A root whose parent is not recorded (written before parents were) ends
// the chain, as does a parent GC already swept (retention was shorter, or
// off, when it ran): the history offered starts there.
//
// The point p with child c (the next root of the history) was the volume's
// state during [p.CutTime, c.CutTime); it is retained at time t while
// c.CutTime >= t-W, so every second of the window has a point. The head's
// own root is always kept. A point whose child has the same cut time (an
// attach copies its source's root under a new key) was never the state for
// an instant and is not listed.
//
// The window W a volume's GC honours is the one recorded in its head's root
// (root.Retain, the writer's Config.RecoveryPointRetention), so every
// gateway sharing the store keeps what the owner asked for; listing uses
// the smaller of that and this engine's own window.
//
// GC safety of a pin (rule G3d, next to G3a–c in gc.go): GC at time M keeps
// a point whose child was cut at or after M-W-L (L the lease, G/2): a
// margin of L beyond the window. SnapshotRetainedRecoveryPoint chooses a
// point retained at its start T (child cut at or after T-W) and writes the
// record within L of T, or deletes it and fails: a round that listed
// records before the write started at M < T+L, so M-W-L < T-W and the
// round kept the point.
//
// A deleted volume's retained points go with it, as AWS deletes a volume's
// recovery point with the volume: its tombstone keeps only its last root
// for G (G2), and nothing walks the history of a tombstone. Snapshots
// already taken of its points are records like any other and stay.

// historyPoint is one root of a volume's history, summed up (a day of a
// large volume's roots would not fit in memory whole), and until when it
// was the volume's state (zero for the head's root: it still is).
type historyPoint struct {
	key         string
	seq         uint64
	cut         time.Time
	size, usage int64
	until       time.Time
}

func pointOf(r *root, until time.Time) historyPoint {
	return historyPoint{key: r.key(), seq: r.Seq, cut: r.CutTime, size: r.Size, usage: r.usage(), until: until}
}

// history walks the parents of top while the point is retained at time now
// under window w (its child cut at or after now-w), newest first, calling
// visit (if not nil) with each root, top included, while it is loaded. A
// parent that is gone (swept) or not recorded ends the walk.
func (e *Engine) history(ctx context.Context, top *root, now time.Time, w time.Duration, visit func(*root) error) ([]historyPoint, error) {
	out := []historyPoint{pointOf(top, time.Time{})}
	if visit != nil {
		if err := visit(top); err != nil {
			return nil, err
		}
	}
	cur := top
	for cur.Parent != "" && !cur.CutTime.Before(now.Add(-w)) {
		p, err := e.loadRoot(ctx, cur.Parent)
		if errors.Is(err, blob.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		if p.Volume != top.Volume || p.Seq >= cur.Seq || p.CutTime.After(cur.CutTime) {
			return nil, fmt.Errorf("%w: root %s names parent %s of volume %s seq %d cut %v", ErrCorrupt, cur.key(), cur.Parent, p.Volume, p.Seq, p.CutTime)
		}
		out = append(out, pointOf(p, cur.CutTime))
		if visit != nil {
			if err := visit(p); err != nil {
				return nil, err
			}
		}
		cur = p
	}
	return out, nil
}

// retentionWindow is the window listing honours for a volume whose
// published root is base: the smaller of ours and the one base recorded
// (which GC honours until the next cut records ours).
func (e *Engine) retentionWindow(base *root) time.Duration {
	return max(0, min(e.cfg.RecoveryPointRetention, base.Retain))
}

// retainedHistory is the volume's retained points, newest first, with the
// time the walk started. It takes no cut lock: a walk reads one root per
// point (thousands for a day of busy cuts) and cuts go on meanwhile; a
// root swept under it ends the walk.
func (e *Engine) retainedHistory(ctx context.Context, v *Volume) ([]historyPoint, time.Time, error) {
	v.mu.Lock()
	err := v.usable()
	if err == nil && v.fenced != nil {
		err = v.fenced // its root is no longer the volume's history
	}
	base := v.base
	v.mu.Unlock()
	if err != nil {
		return nil, time.Time{}, err
	}
	if base.Seq == 0 && base.Token == "" {
		// Never published (the in-memory start of a lost base).
		return nil, time.Time{}, fmt.Errorf("%w: %s has no published recovery point", control.ErrVolumeNotReady, v.id)
	}
	start := e.now()
	hist, err := e.history(ctx, base, start, e.retentionWindow(base), nil)
	if err != nil {
		return nil, start, err
	}
	// Drop points that were never the state for an instant (an attach's
	// copy of its source's root).
	return instants(hist), start, nil
}

// instants drops the points that were never the volume's state for an
// instant (an attach's copy of its source's root).
func instants(hist []historyPoint) []historyPoint {
	return slices.DeleteFunc(hist, func(p historyPoint) bool { return !p.until.IsZero() && !p.until.After(p.cut) })
}

// newerThan is the history from top back to, not including, the root
// named old, which top descends from: the points published since old was
// the head (a short walk; old itself is not read, it may be gone).
func (e *Engine) newerThan(ctx context.Context, top *root, old string) ([]historyPoint, error) {
	var out []historyPoint
	var until time.Time
	for cur := top; ; {
		out = append(out, pointOf(cur, until))
		if cur.Parent == old {
			return out, nil
		}
		if cur.Parent == "" {
			return nil, fmt.Errorf("%w: root %s does not descend from %s", ErrCorrupt, top.key(), old)
		}
		p, err := e.loadRoot(ctx, cur.Parent)
		if err != nil {
			return nil, err
		}
		until, cur = cur.CutTime, p
	}
}

// RetainedRecoveryPoints implements control.RetainedPointEngine: the
// volume's retained points, oldest first. With no retention window it is
// only the current one.
func (e *Engine) RetainedRecoveryPoints(ctx context.Context, volumeID string) ([]control.RetainedRecoveryPoint, error) {
	v, err := e.Volume(volumeID)
	if err != nil {
		return nil, err
	}
	hist, _, err := e.retainedHistory(ctx, v)
	if err != nil {
		return nil, err
	}
	out := make([]control.RetainedRecoveryPoint, 0, len(hist))
	for i := len(hist) - 1; i >= 0; i-- {
		p := hist[i]
		out = append(out, control.RetainedRecoveryPoint{Time: p.cut.UTC(), Seq: p.seq, SizeBytes: p.size, UsageBytes: p.usage, Current: i == 0})
	}
	return out, nil
}

// SnapshotRetainedRecoveryPoint implements control.RetainedPointEngine: a
// completed snapshot record pinning the chosen retained point (the one of
// sequence req.Seq, or the latest cut at or before req.At). The history is
// walked without the cut lock; then, under it, the points published since
// are added (a short walk) and the choice is made, so the current point
// stays the head while its record is written (G3a); an older point is kept
// by rule G3d (above).
func (e *Engine) SnapshotRetainedRecoveryPoint(ctx context.Context, req control.RetainedSnapshotRequest) (control.Snapshot, control.RetainedRecoveryPoint, error) {
	if req.SnapshotID == "" || blob.ValidateKey(snapshotKey(req.SnapshotID)) != nil || strings.Contains(req.SnapshotID, "/") {
		return control.Snapshot{}, control.RetainedRecoveryPoint{}, fmt.Errorf("volume: bad snapshot ID %q", req.SnapshotID)
	}
	v, err := e.Volume(req.VolumeID)
	if err != nil {
		return control.Snapshot{}, control.RetainedRecoveryPoint{}, err
	}
	hist, _, err := e.retainedHistory(ctx, v)
	if err != nil {
		return control.Snapshot{}, control.RetainedRecoveryPoint{}, err
	}
	v.cutMu.Lock()
	defer v.cutMu.Unlock()
	v.mu.Lock()
	err = v.usable()
	base := v.base
	v.mu.Unlock()
	if err != nil {
		return control.Snapshot{}, control.RetainedRecoveryPoint{}, err
	}
	if base.key() != hist[0].key {
		newer, err := e.newerThan(ctx, base, hist[0].key)
		if err != nil {
			return control.Snapshot{}, control.RetainedRecoveryPoint{}, err
		}
		hist[0].until = newer[len(newer)-1].cut
		hist = instants(append(newer, hist...))
	}
	// Retained now (G3d counts from here): a point that left the window
	// during the walk is not offered.
	start := e.now()
	from := start.Add(-e.retentionWindow(base))
	hist = slices.DeleteFunc(hist, func(p historyPoint) bool { return !p.until.IsZero() && p.until.Before(from) })
	var pick *historyPoint
	for i, p := range hist { // newest first
		if req.BySeq && p.seq == req.Seq || !req.BySeq && !p.cut.After(req.At) {
			pick = &hist[i]
			break
		}
	}
	if pick == nil {
		return control.Snapshot{}, control.RetainedRecoveryPoint{}, fmt.Errorf("volume: %s: %w", v.id, control.ErrNoRetainedRecoveryPoint)
	}
	rec := &snapRecord{ID: req.SnapshotID, VolumeID: req.VolumeID, VolumeARN: req.VolumeARN, SizeBytes: pick.size,
		StartTime: e.now().UTC(), PointTime: pick.cut.UTC(), Description: req.Description, Tags: slices.Clone(req.Tags),
		Status: string(control.SnapshotCompleted), Root: pick.key, UsageBytes: pick.usage, Owner: e.state.Owner, KMSKey: v.keyName}
	b, err := e.encodeRecord(rec)
	if err != nil {
		return control.Snapshot{}, control.RetainedRecoveryPoint{}, err
	}
	_, err = e.store.Put(ctx, snapshotKey(rec.ID), b, blob.PutOptions{IfNoneMatch: true})
	if errors.Is(err, blob.ErrPreconditionFailed) {
		return control.Snapshot{}, control.RetainedRecoveryPoint{}, fmt.Errorf("%w: snapshot %s", ErrSnapshotExists, rec.ID)
	}
	if err != nil {
		return control.Snapshot{}, control.RetainedRecoveryPoint{}, fmt.Errorf("volume: snapshot %s: %w", rec.ID, err)
	}
	if d := e.now().Sub(start); d > e.lease() {
		// G3d: the point may have been swept meanwhile; the record must
		// not outlive this answer.
		if derr := e.store.Delete(ctx, snapshotKey(rec.ID)); derr != nil {
			e.log.Error("volume: could not withdraw a snapshot written past its lease", "snapshot", rec.ID, "err", derr)
		}
		return control.Snapshot{}, control.RetainedRecoveryPoint{}, fmt.Errorf("%w: snapshot %s of %s took %v", ErrLeaseExpired, rec.ID, v.id, d)
	}
	return rec.public(), control.RetainedRecoveryPoint{Time: pick.cut.UTC(), Seq: pick.seq, SizeBytes: pick.size, UsageBytes: pick.usage,
		Current: pick.key == base.key()}, nil
}
