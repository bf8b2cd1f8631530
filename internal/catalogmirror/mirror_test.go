package catalogmirror

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/fs"
	"github.com/volgw/volgw/internal/catalog"
)

const (
	testSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	gwID       = "sgw-12A3456B"
	gwARN      = "arn:aws:storagegateway:us-east-1:111122223333:gateway/" + gwID
)

// faultyStore is the real fs store with writes that fail on demand: the
// store being unreachable or refusing, as a remote store can.
type faultyStore struct {
	blob.Store
	fail atomic.Bool
	puts atomic.Int64
}

var errInjected = errors.New("injected store failure")

func (s *faultyStore) Put(ctx context.Context, key string, data []byte, o blob.PutOptions) (blob.ObjectInfo, error) {
	if s.fail.Load() {
		return blob.ObjectInfo{}, errInjected
	}
	s.puts.Add(1)
	return s.Store.Put(ctx, key, data, o)
}

func (s *faultyStore) Delete(ctx context.Context, key string) error {
	if s.fail.Load() {
		return errInjected
	}
	return s.Store.Delete(ctx, key)
}

type fixture struct {
	db    *catalog.DB
	store *faultyStore
	m     *Mirror
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, store: &faultyStore{Store: st}}
	f.m, err = New(Config{DB: db, Store: f.store, Secret: []byte(testSecret), AccessKeyID: "AKIAEXAMPLE"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.m.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) contents(t *testing.T) catalog.Contents {
	t.Helper()
	var c catalog.Contents
	if err := f.db.View(func(tx *catalog.Tx) error {
		var err error
		c, err = tx.Contents()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

func populate(tx *catalog.Tx) error {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	dayOfMonth := 7
	v := catalog.Volume{ID: "vol-0123456789ABCDEF0", ARN: gwARN + "/volume/vol-0123456789ABCDEF0", GatewayID: gwID,
		SizeBytes: 1 << 30, TargetName: "t1", TargetARN: gwARN + "/target/iqn.1997-05.com.amazon:t1", NetworkInterfaceID: "127.0.0.1", CreatedAt: now}
	for _, err := range []error{
		tx.PutGateway(catalog.Gateway{ID: gwID, ARN: gwARN, Name: "gw", Timezone: "GMT", Region: "us-east-1", Type: "CACHED",
			State: catalog.GatewayRunning, CreatedAt: now}),
		tx.PutDisk(catalog.Disk{ID: "cache0", Path: "/d/disks/cache0.img", Node: "cache0.img", SizeBytes: 1 << 30, Allocation: catalog.DiskCache}),
		tx.PutVolume(v),
		tx.PutTags(v.ARN, []catalog.Tag{{Key: "env", Value: "prod"}}),
		tx.PutSchedule(catalog.Schedule{VolumeARN: v.ARN, StartAt: 5, RecurrenceInHours: 12, Description: "d"}),
		tx.PutChapCredential(catalog.ChapCredential{TargetARN: v.TargetARN, InitiatorName: "iqn.2026-11.test:host",
			SecretToAuthenticateInitiator: "initiator-secret-1", SecretToAuthenticateTarget: "target-secret-22"}),
		tx.PutClientToken(catalog.ClientToken{Scope: "CreateCachediSCSIVolume/" + gwID, Token: "tok", ResultARN: v.ARN, CreatedAt: now}),
		tx.PutMaintenance(catalog.Maintenance{GatewayARN: gwARN, HourOfDay: 3, MinuteOfHour: 30, DayOfMonth: &dayOfMonth,
			AutomaticUpdatePolicy: catalog.UpdateEmergencyVersionsOnly, LastRun: now}),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// TestCopyHoldsEveryCommittedRecord: after an Update returns, the copy in
// the store decodes to exactly the catalog's contents, CHAP secrets
// included, and holds no CHAP secret in clear.
func TestCopyHoldsEveryCommittedRecord(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.m.Update(populate); err != nil {
		t.Fatal(err)
	}
	raw, err := f.store.Get(ctx, Key(gwID))
	if err != nil {
		t.Fatalf("no copy after the Update: %v", err)
	}
	for _, secret := range []string{"initiator-secret-1", "target-secret-22", testSecret} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatalf("the copy holds %q in clear", secret)
		}
	}
	cp, err := Load(ctx, f.store, gwID, []byte(testSecret), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := f.contents(t)
	if !reflect.DeepEqual(cp.Contents, want) || len(cp.ChapLeftOut) != 0 {
		t.Fatalf("copy = %+v\nwant %+v", cp.Contents, want)
	}
	entries, err := List(ctx, f.store)
	if err != nil || len(entries) != 1 || entries[0].GatewayID != gwID {
		t.Fatalf("List = %+v, %v", entries, err)
	}

	// Without the API secret, or with another one, everything but CHAP.
	for _, secret := range [][]byte{nil, []byte("another-secret")} {
		cp, err := Load(ctx, f.store, gwID, secret, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(cp.Contents.Chap) != 0 || len(cp.ChapLeftOut) != 1 || !strings.Contains(cp.ChapReason, "AKIAEXAMPLE") ||
			len(cp.Contents.Volumes) != 1 || len(cp.Contents.Schedules) != 1 {
			t.Fatalf("Load with secret %q = %+v", secret, cp)
		}
	}

	// Deleting the gateway deletes its copy: a rebuild cannot bring it back.
	if err := f.m.Update(func(tx *catalog.Tx) error {
		vs, _ := tx.Volumes()
		for _, v := range vs {
			tx.DeleteVolume(v.ID)
			tx.PutTags(v.ARN, nil)
			tx.DeleteSchedule(v.ARN)
			tx.DeleteChapCredential(v.TargetARN, "iqn.2026-11.test:host")
			tx.DeleteClientTokensFor(v.ARN)
		}
		tx.DeleteMaintenance(gwARN)
		return tx.DeleteGateway(gwID)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ctx, f.store, gwID, nil, nil); !errors.Is(err, ErrNoCopy) {
		t.Fatalf("Load after DeleteGateway = %v, want ErrNoCopy", err)
	}
}

// TestStoreFailureCommitsNothing: when the copy cannot be written, Update
// fails and the catalog is unchanged, so no operation is acknowledged that
// the store does not hold; once the store is back, the next Update writes
// it all.
func TestStoreFailureCommitsNothing(t *testing.T) {
	f := newFixture(t)
	f.store.fail.Store(true)
	err := f.m.Update(populate)
	if !errors.Is(err, errInjected) {
		t.Fatalf("Update with the store failing = %v, want the store's error", err)
	}
	if c := f.contents(t); len(c.Gateways) != 0 || len(c.Volumes) != 0 {
		t.Fatalf("a failed Update committed %+v", c)
	}
	f.store.fail.Store(false)
	if err := f.m.Update(populate); err != nil {
		t.Fatal(err)
	}
	cp, err := Load(context.Background(), f.store, gwID, []byte(testSecret), nil)
	if err != nil || !reflect.DeepEqual(cp.Contents, f.contents(t)) {
		t.Fatalf("copy after recovery: %+v, %v", cp, err)
	}

	// An error from fn writes nothing and keeps nothing.
	puts := f.store.puts.Load()
	boom := errors.New("boom")
	if err := f.m.Update(func(tx *catalog.Tx) error { tx.PutTags(gwARN, []catalog.Tag{{Key: "a", Value: "b"}}); return boom }); !errors.Is(err, boom) {
		t.Fatalf("Update = %v", err)
	}
	// An Update that changes nothing the copy holds writes nothing.
	if err := f.m.Update(func(tx *catalog.Tx) error {
		return tx.PutActivationKey(catalog.ActivationKey{Key: "AAAAA-BBBBB", Region: "us-east-1", IssuedAt: time.Now()})
	}); err != nil {
		t.Fatal(err)
	}
	if got := f.store.puts.Load(); got != puts {
		t.Fatalf("%d store writes for Updates that changed nothing the copy holds", got-puts)
	}
}

// TestDamagedCopyRefused: a copy whose bytes changed, that names another
// gateway, or that a newer volgw wrote is refused, never half-read.
func TestDamagedCopyRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.m.Update(populate); err != nil {
		t.Fatal(err)
	}
	raw, err := f.store.Get(ctx, Key(gwID))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		raw  []byte
		want error
	}{
		"a volume's size changed": {bytes.Replace(raw, []byte(`1073741824`), []byte(`1073741825`), 1), ErrInvalid},
		"cut short":               {raw[:len(raw)/2], ErrInvalid},
		"newer version":           {bytes.Replace(raw, []byte(`"Version":1`), []byte(`"Version":2`), 1), ErrNewer},
		"another gateway":         {bytes.Replace(raw, []byte(`"GatewayID":"`+gwID), []byte(`"GatewayID":"sgw-00000000`), 1), ErrInvalid},
	} {
		if bytes.Equal(c.raw, raw) {
			t.Fatalf("%s: the test's edit changed nothing", name)
		}
		if _, err := f.store.Put(ctx, Key(gwID), c.raw, blob.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(ctx, f.store, gwID, []byte(testSecret), nil); !errors.Is(err, c.want) {
			t.Errorf("%s: Load = %v, want %v", name, err, c.want)
		}
	}
}

// TestSyncRefusesCatalogOlderThanItsCopy: a catalog that went back in time
// (an old backup of catalog.db put back) must not start and overwrite the
// copy of the changes made since; one generation behind is the change in
// flight at a crash, which was never acknowledged, and is overwritten.
func TestSyncRefusesCatalogOlderThanItsCopy(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.m.Update(populate); err != nil {
		t.Fatal(err)
	}
	old := f.contents(t)
	for _, name := range []string{"a", "b"} {
		if err := f.m.Update(func(tx *catalog.Tx) error {
			return tx.PutTags(gwARN, []catalog.Tag{{Key: name, Value: "v"}})
		}); err != nil {
			t.Fatal(err)
		}
	}
	if g := f.contents(t).Generation; g != old.Generation+2 {
		t.Fatalf("generation %d after two changes from %d", g, old.Generation)
	}
	start := func(c catalog.Contents) error {
		dir := t.TempDir()
		if err := catalog.Restore(dir, c); err != nil {
			t.Fatal(err)
		}
		db, err := catalog.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		m, err := New(Config{DB: db, Store: f.store, Secret: []byte(testSecret)})
		if err != nil {
			t.Fatal(err)
		}
		return m.Sync(ctx)
	}
	if err := start(old); !errors.Is(err, ErrCatalogBehind) {
		t.Fatalf("Sync of a catalog two changes behind its copy = %v, want ErrCatalogBehind", err)
	}
	if cp, err := Load(ctx, f.store, gwID, []byte(testSecret), nil); err != nil || cp.Contents.Generation != old.Generation+2 {
		t.Fatalf("the refused Sync changed the copy: %+v, %v", cp.Contents.Generation, err)
	}
	oneBehind := f.contents(t)
	oneBehind.Generation--
	if err := start(oneBehind); err != nil {
		t.Fatalf("Sync of a catalog one change behind its copy: %v", err)
	}
	if cp, err := Load(ctx, f.store, gwID, []byte(testSecret), nil); err != nil || cp.Contents.Generation != oneBehind.Generation {
		t.Fatalf("copy after Sync: generation %d, %v; want %d", cp.Contents.Generation, err, oneBehind.Generation)
	}
}
