package catalog

import (
	"fmt"
	"time"
)

// bucketMaintenance holds each gateway's maintenance window, keyed by
// gateway ARN. It is created on first write (a catalog from before it
// exists has none, and reads then find none): allBuckets need not know it.
var bucketMaintenance = []byte("maintenance")

// Automatic update policies (UpdateMaintenanceStartTime's
// SoftwareUpdatePreferences).
const (
	UpdateAllVersions           = "ALL_VERSIONS"
	UpdateEmergencyVersionsOnly = "EMERGENCY_VERSIONS_ONLY"
)

// Maintenance is a gateway's maintenance window as set by
// UpdateMaintenanceStartTime: weekly (DayOfWeek) or monthly (DayOfMonth)
// at HourOfDay:MinuteOfHour in the gateway's time zone. A gateway with no
// record has the default window the control plane derives from its ID.
type Maintenance struct {
	V                     int
	GatewayARN            string
	HourOfDay             int
	MinuteOfHour          int
	DayOfWeek             *int `json:",omitempty"` // 0 (Sunday) .. 6
	DayOfMonth            *int `json:",omitempty"` // 1 .. 28
	AutomaticUpdatePolicy string
	// LastRun is the start of the last window the gateway ran its
	// maintenance in (zero: none yet).
	LastRun time.Time `json:",omitempty"`
}

func (r *Maintenance) check() error {
	if err := checkVersion(r.V); err != nil {
		return err
	}
	ok := r.GatewayARN != "" && r.HourOfDay >= 0 && r.HourOfDay <= 23 && r.MinuteOfHour >= 0 && r.MinuteOfHour <= 59 &&
		(r.DayOfWeek == nil) != (r.DayOfMonth == nil) &&
		(r.DayOfWeek == nil || (*r.DayOfWeek >= 0 && *r.DayOfWeek <= 6)) &&
		(r.DayOfMonth == nil || (*r.DayOfMonth >= 1 && *r.DayOfMonth <= 28)) &&
		(r.AutomaticUpdatePolicy == UpdateAllVersions || r.AutomaticUpdatePolicy == UpdateEmergencyVersionsOnly)
	if !ok {
		return invalid("maintenance window of %q: %02d:%02d day of week %v day of month %v policy %q",
			r.GatewayARN, r.HourOfDay, r.MinuteOfHour, r.DayOfWeek, r.DayOfMonth, r.AutomaticUpdatePolicy)
	}
	return nil
}

// Maintenance returns a gateway's maintenance window, ErrNotFound if it
// has none of its own.
func (tx *Tx) Maintenance(gatewayARN string) (Maintenance, error) {
	if tx.tx.Bucket(bucketMaintenance) == nil {
		return Maintenance{}, fmt.Errorf("%s %q: %w", bucketMaintenance, gatewayARN, ErrNotFound)
	}
	return get[Maintenance](tx, bucketMaintenance, gatewayARN)
}

// Maintenances returns every gateway's own maintenance window, by ARN.
func (tx *Tx) Maintenances() ([]Maintenance, error) {
	if tx.tx.Bucket(bucketMaintenance) == nil {
		return nil, nil
	}
	return list[Maintenance](tx, bucketMaintenance, "")
}

// PutMaintenance creates or replaces a gateway's maintenance window.
func (tx *Tx) PutMaintenance(m Maintenance) error {
	if _, err := tx.tx.CreateBucketIfNotExists(bucketMaintenance); err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	m.V = currentVersion
	return put(tx, bucketMaintenance, m.GatewayARN, &m)
}

// DeleteMaintenance forgets a gateway's window (with the gateway); none
// is not an error.
func (tx *Tx) DeleteMaintenance(gatewayARN string) error {
	if tx.tx.Bucket(bucketMaintenance) == nil {
		return nil
	}
	return del(tx, bucketMaintenance, gatewayARN)
}

// checkMaintenance is Check's part for maintenance windows: each names a
// gateway the catalog holds.
func (tx *Tx) checkMaintenance(gateways map[string]bool, bad func(string, ...any)) error {
	all, err := tx.Maintenances()
	if err != nil {
		return err
	}
	for _, m := range all {
		if !gateways[m.GatewayARN] {
			bad("maintenance window of missing gateway %s", m.GatewayARN)
		}
	}
	return nil
}
