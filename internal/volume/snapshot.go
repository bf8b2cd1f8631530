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

// snapRecord is a snapshot as stored at snapshots/<id>.json: everything a
// gateway needs to list and restore it, and a reference to its root.
//
// Invariant (snapshots): a completed record is written only while its root
// is the volume's published head (under the volume's cutMu), so the root
// and everything it names exist before the record does. A pending record
// names no root. Deleting writes a tombstone (Deleted) first; GC keeps the
// root marked for the grace period after that and then removes the record.
type snapRecord struct {
	ID        string    `json:"id"`
	VolumeID  string    `json:"volumeId"`
	VolumeARN string    `json:"volumeArn,omitempty"`
	SizeBytes int64     `json:"sizeBytes"`
	StartTime time.Time `json:"startTime"` // when it was initiated; never changes
	// PointTime is the time of the recovery point it holds (its root's cut,
	// or later if the volume was clean then); set when it completes.
	// Records written before it existed have only StartTime, which was
	// then the point's time.
	PointTime   time.Time     `json:"pointTime,omitzero"`
	Description string        `json:"description,omitempty"`
	Tags        []control.Tag `json:"tags,omitempty"`
	Status      string        `json:"status"`
	Root        string        `json:"root,omitempty"` // key of the root it pins
	UsageBytes  int64         `json:"usageBytes"`
	Owner       string        `json:"owner"` // gateway that completes it
	Deleted     bool          `json:"deleted,omitempty"`
	DeletedAt   time.Time     `json:"deletedAt,omitzero"`
	// Import is set on a snapshot made through the EBS direct APIs
	// (snapshotimport.go).
	Import *importInfo `json:"import,omitempty"`
	// KMSKey names the key the snapshot's root is sealed with; then
	// Description and Tags are stored only sealed, in Sealed
	// (sealing.go), and opened says they were read from it.
	KMSKey string `json:"kmsKey,omitempty"`
	Sealed []byte `json:"sealed,omitempty"`
	opened bool
}

func (r *snapRecord) public() control.Snapshot {
	s := control.Snapshot{ID: r.ID, VolumeID: r.VolumeID, VolumeARN: r.VolumeARN, VolumeSizeBytes: r.SizeBytes,
		StartTime: r.StartTime, RecoveryPointTime: r.PointTime, Description: r.Description, Tags: slices.Clone(r.Tags), Status: control.SnapshotStatus(r.Status), KMSKey: r.KMSKey}
	if s.Status == control.SnapshotCompleted {
		s.Progress = 100
		if s.RecoveryPointTime.IsZero() {
			s.RecoveryPointTime = r.StartTime
		}
	}
	return s
}

func (e *Engine) getRecord(ctx context.Context, id string) (*snapRecord, string, error) {
	if blob.ValidateKey(snapshotKey(id)) != nil || strings.Contains(id, "/") {
		return nil, "", fmt.Errorf("%w: %q", control.ErrSnapshotNotFound, id)
	}
	// The ETag is read before the body: a record replaced in between is
	// then newer than its ETag says, and updateRecord's compare-and-swap
	// fails and reads again. The other order paired an older body with the
	// newer record's ETag, and the swap wrote a change made to the old
	// body over the new record (another gateway's tags, a completion).
	info, err := e.store.Stat(ctx, snapshotKey(id))
	if errors.Is(err, blob.ErrNotFound) {
		return nil, "", fmt.Errorf("%w: %s", control.ErrSnapshotNotFound, id)
	}
	if err != nil {
		return nil, "", fmt.Errorf("volume: snapshot %s: %w", id, err)
	}
	b, err := e.store.Get(ctx, snapshotKey(id))
	if errors.Is(err, blob.ErrNotFound) {
		return nil, "", fmt.Errorf("%w: %s", control.ErrSnapshotNotFound, id)
	}
	if err != nil {
		return nil, "", fmt.Errorf("volume: snapshot %s: %w", id, err)
	}
	r, err := e.decodeRecord(id, b)
	if err != nil {
		return nil, "", err
	}
	return r, info.ETag, nil
}

// updateRecord applies fn to the stored record with a compare-and-swap, so
// concurrent tag changes, completion and deletion do not lose each other.
// fn returning errSkip leaves the record as it is.
func (e *Engine) updateRecord(ctx context.Context, id string, fn func(*snapRecord) error) error {
	for range 20 {
		r, etag, err := e.getRecord(ctx, id)
		if err != nil {
			return err
		}
		if err := fn(r); err != nil {
			if errors.Is(err, errSkip) {
				return nil
			}
			return err
		}
		b, err := e.encodeRecord(r)
		if err != nil {
			return err
		}
		_, err = e.store.Put(ctx, snapshotKey(id), b, blob.PutOptions{IfMatch: etag})
		if errors.Is(err, blob.ErrPreconditionFailed) {
			continue
		}
		if err != nil {
			return fmt.Errorf("volume: snapshot %s: %w", id, err)
		}
		return nil
	}
	return fmt.Errorf("volume: snapshot %s: too much contention", id)
}

var errSkip = errors.New("skip")

// CreateSnapshot implements control.VolumeEngine. FromRecoveryPoint pins the
// published root: one small object written, whatever the volume's size. A
// snapshot of a volume with nothing dirty is the same pin. Otherwise the
// record is written pending and the next cut (forced now) completes it.
func (e *Engine) CreateSnapshot(ctx context.Context, req control.SnapshotRequest) (control.Snapshot, error) {
	if req.SnapshotID == "" || blob.ValidateKey(snapshotKey(req.SnapshotID)) != nil || strings.Contains(req.SnapshotID, "/") {
		return control.Snapshot{}, fmt.Errorf("volume: bad snapshot ID %q", req.SnapshotID)
	}
	v, err := e.Volume(req.VolumeID)
	if err != nil {
		return control.Snapshot{}, err
	}
	v.cutMu.Lock()
	defer v.cutMu.Unlock()
	v.mu.Lock()
	check := v.writable // a snapshot of the volume as it is now
	if req.FromRecoveryPoint {
		check = v.usable // the way back from IRRECOVERABLE
	}
	if err := check(); err != nil {
		v.mu.Unlock()
		return control.Snapshot{}, err
	}
	clean := v.isClean()
	v.noteClean()
	base, t := v.base, v.recoveryTime()
	v.mu.Unlock()
	// StartTime is when the snapshot was initiated (EC2), fixed here; the
	// point it holds is PointTime, known now for a pin and at completion
	// for a pending one.
	rec := &snapRecord{ID: req.SnapshotID, VolumeID: req.VolumeID, VolumeARN: req.VolumeARN, SizeBytes: v.size,
		StartTime: e.now().UTC(), Description: req.Description, Tags: slices.Clone(req.Tags), Owner: e.state.Owner, KMSKey: v.keyName}
	if req.FromRecoveryPoint || clean {
		rec.Status, rec.Root, rec.UsageBytes, rec.PointTime = string(control.SnapshotCompleted), base.key(), base.usage(), t.UTC()
	} else {
		rec.Status = string(control.SnapshotPending)
	}
	b, err := e.encodeRecord(rec)
	if err != nil {
		return control.Snapshot{}, err
	}
	_, err = e.store.Put(ctx, snapshotKey(rec.ID), b, blob.PutOptions{IfNoneMatch: true})
	if errors.Is(err, blob.ErrPreconditionFailed) {
		return control.Snapshot{}, fmt.Errorf("%w: snapshot %s", ErrSnapshotExists, rec.ID)
	}
	if err != nil {
		return control.Snapshot{}, fmt.Errorf("volume: snapshot %s: %w", rec.ID, err)
	}
	if rec.Status == string(control.SnapshotPending) {
		v.mu.Lock()
		v.pendingSnaps = append(v.pendingSnaps, rec.ID)
		v.mu.Unlock()
		e.wake()
	}
	return rec.public(), nil
}

// completeSnapshots marks pending snapshots completed at root r, whose cut
// time is t. The caller holds v.cutMu and r is the published head.
func (e *Engine) completeSnapshots(ctx context.Context, ids []string, r *root, t time.Time) error {
	var errs []error
	for _, id := range ids {
		err := e.updateRecord(ctx, id, func(rec *snapRecord) error {
			if rec.Deleted || rec.Status != string(control.SnapshotPending) {
				return errSkip
			}
			rec.Status, rec.Root, rec.PointTime, rec.UsageBytes = string(control.SnapshotCompleted), r.key(), t.UTC(), r.usage()
			return nil
		})
		if err != nil && !errors.Is(err, control.ErrSnapshotNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// resumeSnapshots, at Open: snapshots this gateway left pending are
// completed by the next cut of their volume (or marked error if it is gone).
func (e *Engine) resumeSnapshots(ctx context.Context) error {
	recs, err := e.listRecords(ctx)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.Deleted || r.Status != string(control.SnapshotPending) || r.Owner != e.state.Owner || r.Import != nil {
			continue // an import completes or times out by itself (snapshotimport.go)
		}
		e.mu.Lock()
		v := e.vols[r.VolumeID]
		e.mu.Unlock()
		if v != nil {
			v.mu.Lock()
			ok := v.usable() == nil
			if ok && !slices.Contains(v.pendingSnaps, r.ID) {
				v.pendingSnaps = append(v.pendingSnaps, r.ID)
			}
			v.mu.Unlock()
			if ok {
				e.wake()
				continue
			}
		}
		if err := e.updateRecord(ctx, r.ID, func(rec *snapRecord) error {
			rec.Status = string(control.SnapshotError)
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) listRecords(ctx context.Context) ([]*snapRecord, error) {
	var ids []string
	err := e.store.List(ctx, "snapshots/", func(o blob.ObjectInfo) error {
		if id, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, "snapshots/"), ".json"); ok && !strings.Contains(id, "/") {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("volume: listing snapshots: %w", err)
	}
	out := make([]*snapRecord, 0, len(ids))
	for _, id := range ids {
		r, _, err := e.getRecord(ctx, id)
		if errors.Is(err, control.ErrSnapshotNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Snapshots implements control.VolumeEngine: every snapshot in the store,
// whichever gateway made it.
func (e *Engine) Snapshots(ctx context.Context) ([]control.Snapshot, error) {
	recs, err := e.listRecords(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]control.Snapshot, 0, len(recs))
	for _, r := range recs {
		if !r.Deleted {
			out = append(out, e.withProgress(r.public()))
		}
	}
	return out, nil
}

// Snapshot implements control.VolumeEngine.
func (e *Engine) Snapshot(ctx context.Context, id string) (control.Snapshot, error) {
	r, _, err := e.getRecord(ctx, id)
	if err != nil {
		return control.Snapshot{}, err
	}
	if r.Deleted {
		return control.Snapshot{}, fmt.Errorf("%w: %s", control.ErrSnapshotNotFound, id)
	}
	return e.withProgress(r.public()), nil
}

// withProgress fills in the progress of a pending snapshot this gateway is
// uploading: the share of the cut's blocks already stored.
func (e *Engine) withProgress(s control.Snapshot) control.Snapshot {
	if s.Status != control.SnapshotPending {
		return s
	}
	if p, ok := e.ebs.progress.Load(s.ID); ok { // an import (snapshotimport.go)
		s.Progress = p.(int)
		return s
	}
	e.mu.Lock()
	v := e.vols[s.VolumeID]
	e.mu.Unlock()
	if v == nil {
		return s
	}
	v.mu.Lock()
	inCut := v.cut != nil && slices.Contains(v.cut.snaps, s.ID)
	v.mu.Unlock()
	if inCut {
		if total := v.cutTotal.Load(); total > 0 {
			s.Progress = int(min(99, 100*v.cutDone.Load()/total))
		} else {
			s.Progress = 99
		}
	}
	return s
}

// UpdateSnapshotTags implements control.SnapshotTagUpdater: change gets
// the tags of the record as stored and its answer is written only over that
// same record (updateRecord's compare-and-swap, retried), so tag changes
// made at once by gateways sharing the store all take effect.
func (e *Engine) UpdateSnapshotTags(ctx context.Context, id string, change func([]control.Tag) ([]control.Tag, error)) error {
	return e.updateRecord(ctx, id, func(r *snapRecord) error {
		if r.Deleted {
			return fmt.Errorf("%w: %s", control.ErrSnapshotNotFound, id)
		}
		tags, err := change(slices.Clone(r.Tags))
		if err != nil {
			return err
		}
		r.Tags = tags
		return nil
	})
}

// SetSnapshotTags implements control.VolumeEngine.
func (e *Engine) SetSnapshotTags(ctx context.Context, id string, tags []control.Tag) error {
	return e.updateRecord(ctx, id, func(r *snapRecord) error {
		if r.Deleted {
			return fmt.Errorf("%w: %s", control.ErrSnapshotNotFound, id)
		}
		r.Tags = slices.Clone(tags)
		return nil
	})
}

// DeleteSnapshot implements control.VolumeEngine: the record becomes a
// tombstone; GC reclaims what no other root uses.
func (e *Engine) DeleteSnapshot(ctx context.Context, id string) error {
	return e.updateRecord(ctx, id, func(r *snapRecord) error {
		if r.Deleted {
			return fmt.Errorf("%w: %s", control.ErrSnapshotNotFound, id)
		}
		r.Deleted, r.DeletedAt = true, e.now().UTC()
		return nil
	})
}
