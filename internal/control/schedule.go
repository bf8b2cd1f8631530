package control

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	if err := checkTags(in.Tags); err != nil {
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
			Description: in.Description, Tags: toCatalogTags(in.Tags), Since: s.now(),
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
			_, g, err := s.anyVolumeTx(tx, sch.VolumeARN)
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

// lastSlot is the latest scheduled instant at or before now: the slots are
// StartAt:00 and every RecurrenceInHours after it, each day, in loc. (AWS's
// recurrences, 1 to 24 hours dividing the day, make the slots the same every
// day.)
func lastSlot(now time.Time, startAt, every int, loc *time.Location) time.Time {
	local := now.In(loc)
	day := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, loc)
	var last time.Time
	// Slots of yesterday and today; the last of them not after now.
	for d := -1; d <= 0; d++ {
		base := day.AddDate(0, 0, d)
		for h := startAt % every; h < 24; h += every {
			t := base.Add(time.Duration(h) * time.Hour)
			if !t.After(now) && t.After(last) {
				last = t
			}
		}
	}
	return last
}

// TakeScheduledSnapshots takes the snapshots that schedules have made due
// since they last ran: for each volume of a running gateway, at most one
// (the latest missed slot; a gateway that was down does not catch up slot
// by slot, as AWS's does not). The caller runs it periodically (every
// minute is plenty); it returns the snapshot IDs it took. A slot is
// recorded as taken only once its snapshot exists.
func (s *Service) TakeScheduledSnapshots(ctx context.Context) ([]string, error) {
	type due struct {
		sch  catalog.Schedule
		slot time.Time
	}
	var todo []due
	now := s.now()
	err := s.view(func(tx *catalog.Tx) error {
		all, err := tx.Schedules()
		if err != nil {
			return err
		}
		for _, sch := range all {
			_, g, err := s.anyVolumeTx(tx, sch.VolumeARN)
			if IsCode(err, CodeVolumeNotFound) || IsCode(err, CodeGatewayNotFound) {
				continue
			} else if err != nil {
				return err
			}
			if g.State != catalog.GatewayRunning || !recurrences[sch.RecurrenceInHours] {
				continue
			}
			slot := lastSlot(now, sch.StartAt, sch.RecurrenceInHours, gatewayLocation(g.Timezone))
			if slot.IsZero() || !slot.After(sch.LastTaken) || slot.Before(sch.Since) {
				continue
			}
			todo = append(todo, due{sch, slot})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var taken []string
	var errs []error
	for _, d := range todo {
		if s.lostVolume(ctx, volumeIDOf(d.sch.VolumeARN)) {
			// No snapshot of it can be taken until it is deleted; start
			// logged it at ERROR, and failing every minute would only
			// bury that.
			continue
		}
		id, _, err := s.CreateSnapshot(ctx, SnapshotInput{
			VolumeARN: d.sch.VolumeARN, SnapshotDescription: d.sch.Description, Tags: fromCatalogTags(d.sch.Tags),
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("scheduled snapshot of %s: %w", d.sch.VolumeARN, err))
			continue
		}
		taken = append(taken, id)
		s.mu.Lock()
		err = s.update(func(tx *catalog.Tx) error {
			cur, err := tx.Schedule(d.sch.VolumeARN)
			if errors.Is(err, catalog.ErrNotFound) {
				return nil // deleted meanwhile
			} else if err != nil {
				return err
			}
			if d.slot.After(cur.LastTaken) {
				cur.LastTaken = d.slot
			}
			return tx.PutSchedule(cur)
		})
		s.mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
	}
	return taken, errors.Join(errs...)
}
