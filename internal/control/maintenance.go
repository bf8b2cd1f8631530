package control

import (
	"context"
	"errors"
	"hash/fnv"
	"time"

	"github.com/volgw/volgw/internal/catalog"
)

// The maintenance window (UpdateMaintenanceStartTime,
// DescribeMaintenanceStartTime), and what the gateway does in it.
//
// AWS gives every gateway a weekly window when it is activated and applies
// software updates in it. volgw never updates its own software (an update
// is the operator's: a new binary, a restart), so the AutomaticUpdatePolicy
// is stored and reported but has nothing to select between: volgw behaves
// as EMERGENCY_VERSIONS_ONLY with no emergency versions. What the window
// does is volgw's own maintenance (Maintainer): a full garbage-collection
// pass over the store and a scrub of the cache, once per window, started
// within maintenanceLate of its start time in the gateway's time zone.

// Maintainer is implemented by engines that have maintenance to run in the
// gateway's window. Maintain runs it to the end (or until ctx ends) and
// says what it found.
type Maintainer interface {
	Maintain(ctx context.Context) (MaintenanceReport, error)
}

// MaintenanceReport is what a maintenance run found.
type MaintenanceReport struct {
	// GC: objects the collector deleted, and their bytes.
	GCDeletedObjects int
	GCReclaimedBytes int64
	// Scrub: clean cache slots read and checked, and those whose content
	// no longer matched their CRCs (dropped: fetched again when read).
	ScrubbedSlots, BadSlots int
}

// MaintenanceWindow is DescribeMaintenanceStartTime's answer.
type MaintenanceWindow struct {
	GatewayARN              string
	HourOfDay, MinuteOfHour int
	DayOfWeek, DayOfMonth   *int // exactly one is set
	Timezone                string
	AutomaticUpdatePolicy   string
}

// MaintenanceUpdate is UpdateMaintenanceStartTime's input: nil fields keep
// their value.
type MaintenanceUpdate struct {
	GatewayARN                                     string
	HourOfDay, MinuteOfHour, DayOfWeek, DayOfMonth *int
	AutomaticUpdatePolicy                          *string
}

// maintenanceLate is how late a window's maintenance may still start: a
// gateway that was down at the window's start and comes back within this
// runs it, one that comes back later waits for the next window.
const maintenanceLate = time.Hour

// errMaintenanceSchedule: AWS rejects an incomplete schedule ("A complete
// maintenance schedule must include values for both MinuteOfHour and
// HourOfDay, and either DayOfMonth or DayOfWeek"); the message is volgw's.
var errMaintenanceSchedule = invalidParameters("The maintenance schedule is not valid: give both HourOfDay and MinuteOfHour, and either DayOfWeek or DayOfMonth (not both), or only SoftwareUpdatePreferences.")

// defaultMaintenance is the window of a gateway that was never given one.
// AWS assigns each gateway its own weekly window at activation; volgw
// derives it from the gateway's ID, so it is stable, spread across the
// week, and the same after a catalog rebuild.
func defaultMaintenance(g catalog.Gateway) catalog.Maintenance {
	h := fnv.New32a()
	h.Write([]byte(g.ID))
	n := int(h.Sum32() % (7 * 24 * 60))
	day := n / (24 * 60)
	return catalog.Maintenance{GatewayARN: g.ARN, DayOfWeek: &day, HourOfDay: n / 60 % 24, MinuteOfHour: n % 60,
		AutomaticUpdatePolicy: catalog.UpdateAllVersions}
}

func maintenanceOf(tx *catalog.Tx, g catalog.Gateway) (catalog.Maintenance, error) {
	m, err := tx.Maintenance(g.ARN)
	if errors.Is(err, catalog.ErrNotFound) {
		return defaultMaintenance(g), nil
	}
	return m, err
}

// DescribeMaintenanceStartTime returns the gateway's maintenance window.
func (s *Service) DescribeMaintenanceStartTime(ctx context.Context, gatewayARN string) (MaintenanceWindow, error) {
	var out MaintenanceWindow
	err := s.view(func(tx *catalog.Tx) error {
		g, err := s.runningGatewayTx(tx, gatewayARN)
		if err != nil {
			return err
		}
		m, err := maintenanceOf(tx, g)
		if err != nil {
			return err
		}
		out = MaintenanceWindow{GatewayARN: g.ARN, HourOfDay: m.HourOfDay, MinuteOfHour: m.MinuteOfHour,
			DayOfWeek: m.DayOfWeek, DayOfMonth: m.DayOfMonth, Timezone: g.Timezone, AutomaticUpdatePolicy: m.AutomaticUpdatePolicy}
		return nil
	})
	return out, err
}

// UpdateMaintenanceStartTime sets the gateway's window, its update
// policy, or both; an incomplete or invalid schedule changes nothing.
// Moving the window forgets when maintenance last ran, so the new window's
// next start runs it even if the old one ran earlier that day.
func (s *Service) UpdateMaintenanceStartTime(ctx context.Context, in MaintenanceUpdate) (string, error) {
	schedule := in.HourOfDay != nil || in.MinuteOfHour != nil || in.DayOfWeek != nil || in.DayOfMonth != nil
	if schedule && (in.HourOfDay == nil || in.MinuteOfHour == nil || (in.DayOfWeek == nil) == (in.DayOfMonth == nil)) {
		return "", errMaintenanceSchedule
	}
	if !schedule && in.AutomaticUpdatePolicy == nil {
		return "", errMaintenanceSchedule
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var arn string
	err := s.update(func(tx *catalog.Tx) error {
		g, err := s.runningGatewayTx(tx, in.GatewayARN)
		if err != nil {
			return err
		}
		arn = g.ARN
		m, err := maintenanceOf(tx, g)
		if err != nil {
			return err
		}
		if schedule {
			m.HourOfDay, m.MinuteOfHour, m.DayOfWeek, m.DayOfMonth = *in.HourOfDay, *in.MinuteOfHour, in.DayOfWeek, in.DayOfMonth
			m.LastRun = time.Time{}
		}
		if in.AutomaticUpdatePolicy != nil {
			m.AutomaticUpdatePolicy = *in.AutomaticUpdatePolicy
		}
		return tx.PutMaintenance(m)
	})
	return arn, err
}

// lastWindowStart is the latest start of window m at or before now, in
// loc: the window's weekday (or day of the month, 1..28, which every month
// has) at its hour and minute, local time.
func lastWindowStart(now time.Time, m catalog.Maintenance, loc *time.Location) time.Time {
	local := now.In(loc)
	at := func(y int, mo time.Month, d int) time.Time {
		return time.Date(y, mo, d, m.HourOfDay, m.MinuteOfHour, 0, 0, loc)
	}
	if m.DayOfMonth != nil {
		t := at(local.Year(), local.Month(), *m.DayOfMonth)
		if t.After(now) {
			t = at(local.Year(), local.Month()-1, *m.DayOfMonth)
		}
		return t
	}
	if m.DayOfWeek == nil {
		return time.Time{}
	}
	back := (int(local.Weekday()) - *m.DayOfWeek + 7) % 7
	t := at(local.Year(), local.Month(), local.Day()-back)
	if t.After(now) {
		t = at(local.Year(), local.Month(), local.Day()-back-7)
	}
	return t
}

// RunMaintenance runs the gateway's maintenance if its window has started
// (at most maintenanceLate ago) and it has not run in this window yet;
// ran says whether it did. The caller runs it periodically (every minute).
// The window is recorded as run before the maintenance starts: a crash
// during it does not run it again in the same window.
func (s *Service) RunMaintenance(ctx context.Context) (ran bool, rep MaintenanceReport, err error) {
	mt, ok := s.engine.(Maintainer)
	if !ok {
		return false, rep, nil
	}
	now := s.now()
	var due bool
	s.mu.Lock()
	err = s.update(func(tx *catalog.Tx) error {
		gs, err := tx.Gateways()
		if err != nil {
			return err
		}
		for _, g := range gs {
			if g.State != catalog.GatewayRunning {
				continue
			}
			m, err := maintenanceOf(tx, g)
			if err != nil {
				return err
			}
			start := lastWindowStart(now, m, gatewayLocation(g.Timezone))
			if start.IsZero() || !start.After(m.LastRun) || now.Sub(start) >= maintenanceLate {
				continue
			}
			m.LastRun, due = start, true
			if err := tx.PutMaintenance(m); err != nil {
				return err
			}
		}
		return nil
	})
	s.mu.Unlock()
	if err != nil || !due {
		return false, rep, err
	}
	s.log.Info("maintenance window: starting (garbage collection, cache scrub)")
	rep, err = mt.Maintain(ctx)
	return true, rep, err
}
