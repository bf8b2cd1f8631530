package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/volgw/volgw/internal/catalog"
)

// Retained recovery points: volgw's extension beyond AWS, which keeps one
// recovery point per volume. An engine run with a retention window keeps
// every recovery point of a volume's history for that long
// (internal/volume/retention.go); the control plane names them by volume
// ARN and pins one as an ordinary snapshot, restorable with
// CreateCachediSCSIVolume --snapshot-id and visible to EC2's snapshot calls
// like any other.

// RetainedRecoveryPoint is one recovery point of a volume's history.
type RetainedRecoveryPoint struct {
	// Time is the point's cut: the volume held exactly the writes
	// acknowledged before it.
	Time       time.Time
	Seq        uint64 // the point's sequence number in the volume's history
	SizeBytes  int64
	UsageBytes int64
	// Current: the volume's latest published point (the one
	// ListVolumeRecoveryPoints would offer, at its cut time).
	Current bool
}

// RetainedSnapshotRequest asks the engine to pin a retained point: the
// one of sequence Seq when BySeq, else the latest at or before At.
type RetainedSnapshotRequest struct {
	SnapshotID  string
	VolumeID    string
	VolumeARN   string
	Description string
	Tags        []Tag
	At          time.Time
	Seq         uint64
	BySeq       bool
}

// RetainedPointEngine is what the control plane needs of an engine that
// retains recovery points; an engine without it has no retained points.
type RetainedPointEngine interface {
	// RetainedRecoveryPoints lists a volume's retained points, oldest
	// first; ErrVolumeNotFound or ErrVolumeNotReady as for RecoveryPoint.
	RetainedRecoveryPoints(ctx context.Context, volumeID string) ([]RetainedRecoveryPoint, error)
	// SnapshotRetainedRecoveryPoint writes a completed snapshot record
	// pinning the chosen point, and says which it was;
	// ErrNoRetainedRecoveryPoint if none fits.
	SnapshotRetainedRecoveryPoint(ctx context.Context, req RetainedSnapshotRequest) (Snapshot, RetainedRecoveryPoint, error)
}

// ErrNoRetainedRecoveryPoint: no retained point of the volume at or before
// the time given (or of that sequence number). AWS has no such operation;
// the error is Storage Gateway's shape for a request naming something
// that is not there.
var ErrNoRetainedRecoveryPoint = invalidParameters("No retained recovery point of the volume matches the time or sequence number given.")

// ListRetainedRecoveryPoints lists the retained recovery points of the
// volume volumeARN, oldest first.
func (s *Service) ListRetainedRecoveryPoints(ctx context.Context, volumeARN string) ([]RetainedRecoveryPoint, error) {
	v, eng, err := s.retainedVolume(volumeARN)
	if err != nil {
		return nil, err
	}
	pts, err := eng.RetainedRecoveryPoints(ctx, v.ID)
	if mapped := s.notReady(ctx, v.ID, err); mapped != err {
		return nil, mapped
	}
	if err != nil {
		return nil, fmt.Errorf("control: retained recovery points of %s: %w", v.ID, err)
	}
	return pts, nil
}

// RetainedSnapshotInput is the input of CreateSnapshotFromRetainedRecoveryPoint.
type RetainedSnapshotInput struct {
	SnapshotInput
	At    time.Time
	Seq   uint64
	BySeq bool
}

// CreateSnapshotFromRetainedRecoveryPoint snapshots one retained recovery
// point of a volume: the snapshot is completed at once and its
// RecoveryPointTime is the point's time. It returns the snapshot and the
// point.
func (s *Service) CreateSnapshotFromRetainedRecoveryPoint(ctx context.Context, in RetainedSnapshotInput) (Snapshot, RetainedRecoveryPoint, error) {
	v, eng, err := s.retainedVolume(in.VolumeARN)
	if err != nil {
		return Snapshot{}, RetainedRecoveryPoint{}, err
	}
	if err := checkTags(in.Tags); err != nil {
		return Snapshot{}, RetainedRecoveryPoint{}, err
	}
	id, err := s.ids.snapshotID()
	if err != nil {
		return Snapshot{}, RetainedRecoveryPoint{}, err
	}
	snap, pt, err := eng.SnapshotRetainedRecoveryPoint(ctx, RetainedSnapshotRequest{
		SnapshotID: id, VolumeID: v.ID, VolumeARN: v.ARN, Description: in.SnapshotDescription, Tags: in.Tags,
		At: in.At, Seq: in.Seq, BySeq: in.BySeq,
	})
	if mapped := s.notReady(ctx, v.ID, err); mapped != err {
		return Snapshot{}, RetainedRecoveryPoint{}, mapped
	}
	if err != nil {
		return Snapshot{}, RetainedRecoveryPoint{}, fmt.Errorf("control: snapshot of a retained point of %s: %w", v.ID, err)
	}
	return snap, pt, nil
}

// retainedVolume resolves a volume ARN of a running gateway and the engine's
// retention side.
func (s *Service) retainedVolume(arn string) (catalog.Volume, RetainedPointEngine, error) {
	var v catalog.Volume
	err := s.view(func(tx *catalog.Tx) error {
		var err error
		v, _, err = s.volumeTx(tx, arn)
		return err
	})
	if err != nil {
		return catalog.Volume{}, nil, err
	}
	eng, ok := s.engine.(RetainedPointEngine)
	if !ok {
		return catalog.Volume{}, nil, errors.New("control: the engine keeps no retained recovery points")
	}
	return v, eng, nil
}
