package control

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/volgw/volgw/internal/catalog"
)

// VolumeRecoveryPointInfo is one entry of ListVolumeRecoveryPoints.
type VolumeRecoveryPointInfo struct {
	VolumeARN               string
	VolumeSizeInBytes       int64
	VolumeUsageInBytes      int64
	VolumeRecoveryPointTime string // FormatRecoveryPointTime
}

// ListVolumeRecoveryPoints lists the current recovery point of each of a
// gateway's volumes that has one to offer, by volume ARN.
func (s *Service) ListVolumeRecoveryPoints(ctx context.Context, gatewayARN string) (string, []VolumeRecoveryPointInfo, error) {
	var g catalog.Gateway
	var vols []catalog.Volume
	err := s.view(func(tx *catalog.Tx) error {
		var err error
		if g, err = s.runningGatewayTx(tx, gatewayARN); err != nil {
			return err
		}
		vols, err = volumesOf(tx, g.ID)
		return err
	})
	if err != nil {
		return "", nil, err
	}
	out := []VolumeRecoveryPointInfo{}
	for _, v := range vols {
		// A listed recovery point is one a snapshot can be taken from
		// (CreateSnapshotFromVolumeRecoveryPoint). A volume the engine
		// does not hold, or whose recovery point it refuses
		// (ErrVolumeNotReady), has none to offer and is left out; one such
		// volume must not hide every other one's. DescribeCachediSCSIVolumes
		// shows why. An IRRECOVERABLE volume whose recovery point the
		// engine still serves is listed: snapshotting it is the way back.
		rp, err := s.engine.RecoveryPoint(ctx, v.ID)
		if errors.Is(err, ErrVolumeNotFound) || errors.Is(err, ErrVolumeNotReady) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("control: recovery point of %s: %w", v.ID, err)
		}
		out = append(out, VolumeRecoveryPointInfo{
			VolumeARN: v.ARN, VolumeSizeInBytes: rp.SizeBytes, VolumeUsageInBytes: rp.UsageBytes,
			VolumeRecoveryPointTime: FormatRecoveryPointTime(rp.Time),
		})
	}
	return g.ARN, out, nil
}

// SnapshotInput is the input of both snapshot operations.
type SnapshotInput struct {
	VolumeARN           string
	SnapshotDescription string
	Tags                []Tag
}

// CreateSnapshotFromVolumeRecoveryPoint snapshots a volume's current
// recovery point. It returns the snapshot and the recovery point's time.
func (s *Service) CreateSnapshotFromVolumeRecoveryPoint(ctx context.Context, in SnapshotInput) (snapshotID, volumeARN, recoveryPointTime string, err error) {
	snap, err := s.createSnapshot(ctx, in, true)
	if err != nil {
		return "", "", "", err
	}
	return snap.ID, snap.VolumeARN, FormatRecoveryPointTime(snap.RecoveryPointTime), nil
}

// CreateSnapshot snapshots a volume as of now: the engine forces a cut and
// the snapshot is pending until that cut is in the object store.
func (s *Service) CreateSnapshot(ctx context.Context, in SnapshotInput) (snapshotID, volumeARN string, err error) {
	snap, err := s.createSnapshot(ctx, in, false)
	if err != nil {
		return "", "", err
	}
	return snap.ID, snap.VolumeARN, nil
}

func (s *Service) createSnapshot(ctx context.Context, in SnapshotInput, fromRecoveryPoint bool) (Snapshot, error) {
	var v catalog.Volume
	err := s.view(func(tx *catalog.Tx) error {
		var err error
		v, _, err = s.volumeTx(tx, in.VolumeARN)
		return err
	})
	if err != nil {
		return Snapshot{}, err
	}
	if err := checkTags(in.Tags); err != nil {
		return Snapshot{}, err
	}
	id, err := s.ids.snapshotID()
	if err != nil {
		return Snapshot{}, err
	}
	snap, err := s.engine.CreateSnapshot(ctx, SnapshotRequest{
		SnapshotID: id, VolumeID: v.ID, VolumeARN: v.ARN, Description: in.SnapshotDescription,
		Tags: in.Tags, FromRecoveryPoint: fromRecoveryPoint,
	})
	// The catalog names this volume: an engine that does not hold it
	// has lost it (IRRECOVERABLE), which is not "no such volume".
	if mapped := s.notReady(ctx, v.ID, err); mapped != err {
		return Snapshot{}, mapped
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("control: snapshot %s: %w", v.ID, err)
	}
	return snap, nil
}

// Snapshots lists every snapshot in the object store (any gateway's), by
// start time then ID.
func (s *Service) Snapshots(ctx context.Context) ([]Snapshot, error) {
	snaps, err := s.engine.Snapshots(ctx)
	if err != nil {
		return nil, fmt.Errorf("control: list snapshots: %w", err)
	}
	sort.Slice(snaps, func(i, j int) bool {
		if !snaps[i].StartTime.Equal(snaps[j].StartTime) {
			return snaps[i].StartTime.Before(snaps[j].StartTime)
		}
		return snaps[i].ID < snaps[j].ID
	})
	return snaps, nil
}

// DeleteSnapshot deletes a snapshot; an unknown ID is SnapshotNotFound.
func (s *Service) DeleteSnapshot(ctx context.Context, snapshotID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return engineError(s.engine.DeleteSnapshot(ctx, snapshotID))
}
