package control

import (
	"context"
	"errors"

	"github.com/volgw/volgw/internal/catalog"
)

// SnapshotSchedule is a volume's snapshot schedule.
type SnapshotSchedule struct {
	VolumeARN         string
	StartAt           int
	RecurrenceInHours int
	Description       string
	Timezone          string
	Tags              []Tag
	// Exists is false when the volume has no schedule (it was deleted);
	// only VolumeARN and Timezone are then meaningful.
	Exists bool
}

// recurrences are the intervals AWS allows.
var recurrences = map[int]bool{1: true, 2: true, 4: true, 8: true, 12: true, 24: true}

// UpdateSnapshotSchedule replaces a volume's snapshot schedule.
func (s *Service) UpdateSnapshotSchedule(ctx context.Context, in SnapshotSchedule) (string, error) {
	if in.StartAt < 0 || in.StartAt > 23 || !recurrences[in.RecurrenceInHours] {
		return "", invalidParameters("The snapshot schedule is not valid.")
	}
	if err := checkTagLimit(in.Tags); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var arn string
	err := s.update(func(tx *catalog.Tx) error {
		v, _, err := s.volumeTx(tx, in.VolumeARN)
		if err != nil {
			return err
		}
		arn = v.ARN
		return tx.PutSchedule(catalog.Schedule{
			VolumeARN: v.ARN, StartAt: in.StartAt, RecurrenceInHours: in.RecurrenceInHours,
			Description: in.Description, Tags: toCatalogTags(in.Tags),
		})
	})
	return arn, err
}

// DescribeSnapshotSchedule returns a volume's schedule.
func (s *Service) DescribeSnapshotSchedule(ctx context.Context, volumeARN string) (SnapshotSchedule, error) {
	var out SnapshotSchedule
	err := s.view(func(tx *catalog.Tx) error {
		v, g, err := s.volumeTx(tx, volumeARN)
		if err != nil {
			return err
		}
		out = SnapshotSchedule{VolumeARN: v.ARN, Timezone: g.Timezone}
		sch, err := tx.Schedule(v.ARN)
		if errors.Is(err, catalog.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		out.StartAt, out.RecurrenceInHours, out.Description = sch.StartAt, sch.RecurrenceInHours, sch.Description
		out.Tags, out.Exists = fromCatalogTags(sch.Tags), true
		return nil
	})
	return out, err
}

// DeleteSnapshotSchedule deletes a volume's schedule.
func (s *Service) DeleteSnapshotSchedule(ctx context.Context, volumeARN string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var arn string
	err := s.update(func(tx *catalog.Tx) error {
		v, _, err := s.volumeTx(tx, volumeARN)
		if err != nil {
			return err
		}
		arn = v.ARN
		if err := tx.DeleteSchedule(v.ARN); errors.Is(err, catalog.ErrNotFound) {
			return newError(CodeSnapshotScheduleNotFound)
		} else if err != nil {
			return err
		}
		return nil
	})
	return arn, err
}

// SnapshotSchedules returns every volume's schedule with its gateway's time
// zone, for the scheduler that takes the snapshots.
func (s *Service) SnapshotSchedules(ctx context.Context) ([]SnapshotSchedule, error) {
	var out []SnapshotSchedule
	err := s.view(func(tx *catalog.Tx) error {
		all, err := tx.Schedules()
		if err != nil {
			return err
		}
		for _, sch := range all {
			_, g, err := s.volumeTx(tx, sch.VolumeARN)
			if IsCode(err, CodeVolumeNotFound) || IsCode(err, CodeGatewayNotFound) {
				continue // a schedule outliving its volume is never acted on
			} else if err != nil {
				return err
			}
			out = append(out, SnapshotSchedule{
				VolumeARN: sch.VolumeARN, StartAt: sch.StartAt, RecurrenceInHours: sch.RecurrenceInHours,
				Description: sch.Description, Timezone: g.Timezone, Tags: fromCatalogTags(sch.Tags), Exists: true,
			})
		}
		return nil
	})
	return out, err
}
