package catalog

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
)

// TestMaintenanceRecords: a maintenance window is validated, survives a
// reopen, is carried by Contents through Restore, reads as ErrNotFound in
// a catalog from before the bucket existed, and Check finds one whose
// gateway is gone.
func TestMaintenanceRecords(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	g := testGateway()
	day, week, bad := 28, 0, 29
	if err := db.View(func(tx *Tx) error {
		if _, err := tx.Maintenance(g.ARN); !errors.Is(err, ErrNotFound) {
			t.Errorf("Maintenance before any = %v", err)
		}
		all, err := tx.Maintenances()
		if err != nil || len(all) != 0 {
			t.Errorf("Maintenances before any = %v, %v", all, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []Maintenance{
		{GatewayARN: g.ARN, HourOfDay: 1, MinuteOfHour: 0, AutomaticUpdatePolicy: UpdateAllVersions},                    // no day
		{GatewayARN: g.ARN, HourOfDay: 1, DayOfWeek: &week, DayOfMonth: &day, AutomaticUpdatePolicy: UpdateAllVersions}, // both
		{GatewayARN: g.ARN, HourOfDay: 24, DayOfWeek: &week, AutomaticUpdatePolicy: UpdateAllVersions},                  // hour
		{GatewayARN: g.ARN, HourOfDay: 1, DayOfMonth: &bad, AutomaticUpdatePolicy: UpdateAllVersions},                   // day 29
		{GatewayARN: g.ARN, HourOfDay: 1, DayOfWeek: &week, AutomaticUpdatePolicy: "SOMETIMES"},                         // policy
		{GatewayARN: "", HourOfDay: 1, DayOfWeek: &week, AutomaticUpdatePolicy: UpdateAllVersions},                      // no gateway
	} {
		if err := db.Update(func(tx *Tx) error { return tx.PutMaintenance(m) }); !errors.Is(err, ErrCorrupt) {
			t.Errorf("PutMaintenance(%+v) = %v, want refused", m, err)
		}
	}
	want := Maintenance{GatewayARN: g.ARN, HourOfDay: 23, MinuteOfHour: 59, DayOfMonth: &day, AutomaticUpdatePolicy: UpdateEmergencyVersionsOnly,
		LastRun: g.CreatedAt}
	if err := db.Update(func(tx *Tx) error {
		if err := tx.PutGateway(g); err != nil {
			return err
		}
		return tx.PutMaintenance(want)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	var c Contents
	if err := db.View(func(tx *Tx) error {
		got, err := tx.Maintenance(g.ARN)
		want.V = currentVersion
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("after reopen %+v, %v; want %+v", got, err, want)
		}
		c, err = tx.Contents()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(c.Maintenance) != 1 {
		t.Fatalf("Contents holds %d maintenance windows", len(c.Maintenance))
	}
	db.Close()
	rebuilt := filepath.Join(t.TempDir(), "rebuilt")
	if err := Restore(rebuilt, c); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if err := db2.View(func(tx *Tx) error {
		got, err := tx.Maintenance(g.ARN)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("after Restore %+v, %v", got, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The gateway gone, its window is a dangling record.
	if err := db2.Update(func(tx *Tx) error { return tx.DeleteGateway(g.ID) }); err != nil {
		t.Fatal(err)
	}
	if err := db2.View(func(tx *Tx) error { return tx.Check() }); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("Check with a window of a deleted gateway = %v", err)
	}
}
