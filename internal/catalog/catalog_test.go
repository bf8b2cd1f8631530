package catalog

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func testGateway() Gateway {
	return Gateway{
		ID: "sgw-12A3456B", ARN: "arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B",
		Name: "gw", Timezone: "GMT", Region: "us-east-1", Type: "CACHED", State: GatewayRunning,
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

func testVolume(id string) Volume {
	g := testGateway()
	return Volume{
		ID: id, ARN: g.ARN + "/volume/" + id, GatewayID: g.ID, SizeBytes: 1 << 30,
		TargetName: "t-" + id, TargetARN: g.ARN + "/target/iqn.1997-05.com.amazon:t-" + id,
		NetworkInterfaceID: "127.0.0.1", CreatedAt: g.CreatedAt,
	}
}

func TestReopenKeepsEveryKind(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	g := testGateway()
	v := testVolume("vol-0123456789ABCDEF0")
	v.KMSEncrypted, v.KMSKey = true, "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	err = db.Update(func(tx *Tx) error {
		for _, e := range []error{
			tx.PutActivationKey(ActivationKey{Key: "AAAAA-BBBBB", Region: "us-east-1", GatewayType: "CACHED", IssuedAt: g.CreatedAt}),
			tx.PutGateway(g),
			tx.PutDisk(Disk{ID: "cache0", Path: "/x/cache0.img", Node: "cache0.img", SizeBytes: 1 << 30, Allocation: DiskCache}),
			tx.PutVolume(v),
			tx.PutChapCredential(ChapCredential{TargetARN: v.TargetARN, InitiatorName: "iqn.x", SecretToAuthenticateInitiator: "111111111111"}),
			tx.PutTags(v.ARN, []Tag{{"k", "v"}}),
			tx.PutSchedule(Schedule{VolumeARN: v.ARN, StartAt: 6, RecurrenceInHours: 24}),
			tx.PutClientToken(ClientToken{Scope: "CreateCachediSCSIVolume/" + g.ID, Token: "tok", ResultARN: v.ARN, CreatedAt: g.CreatedAt}),
		} {
			if e != nil {
				return e
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *Tx) error {
		if k, err := tx.ActivationKey("AAAAA-BBBBB"); err != nil || k.GatewayType != "CACHED" {
			t.Errorf("activation key = %+v, %v", k, err)
		}
		if got, err := tx.Gateway(g.ID); err != nil || got.Name != "gw" || !got.CreatedAt.Equal(g.CreatedAt) || got.V != currentVersion {
			t.Errorf("gateway = %+v, %v", got, err)
		}
		if ds, err := tx.Disks(); err != nil || len(ds) != 1 || ds[0].Allocation != DiskCache {
			t.Errorf("disks = %+v, %v", ds, err)
		}
		if vs, err := tx.Volumes(); err != nil || len(vs) != 1 || vs[0].TargetARN != v.TargetARN ||
			!vs[0].KMSEncrypted || vs[0].KMSKey != v.KMSKey {
			t.Errorf("volumes = %+v, %v", vs, err)
		}
		if cs, err := tx.ChapCredentials(v.TargetARN); err != nil || len(cs) != 1 || cs[0].InitiatorName != "iqn.x" {
			t.Errorf("chap = %+v, %v", cs, err)
		}
		if tags, err := tx.Tags(v.ARN); err != nil || len(tags) != 1 || tags[0] != (Tag{"k", "v"}) {
			t.Errorf("tags = %+v, %v", tags, err)
		}
		if s, err := tx.Schedule(v.ARN); err != nil || s.StartAt != 6 || s.RecurrenceInHours != 24 {
			t.Errorf("schedule = %+v, %v", s, err)
		}
		if ct, err := tx.ClientToken("CreateCachediSCSIVolume/"+g.ID, "tok"); err != nil || ct.ResultARN != v.ARN {
			t.Errorf("client token = %+v, %v", ct, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestFailedUpdateChangesNothing(t *testing.T) {
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	boom := errors.New("boom")
	err = db.Update(func(tx *Tx) error {
		if err := tx.PutGateway(testGateway()); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	err = db.View(func(tx *Tx) error {
		_, err := tx.Gateway(testGateway().ID)
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("gateway after failed update: %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestInvalidRecordsRefused(t *testing.T) {
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *Tx) error {
		bad := testGateway()
		bad.State = "DANCING"
		if err := tx.PutGateway(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("PutGateway(bad state) = %v, want ErrCorrupt", err)
		}
		if err := tx.PutVolume(Volume{ID: "vol-1"}); !errors.Is(err, ErrCorrupt) {
			t.Errorf("PutVolume(empty) = %v, want ErrCorrupt", err)
		}
		// KMSEncrypted is set exactly when there is a KMSKey.
		keyless := testVolume("vol-2")
		keyless.KMSEncrypted = true
		unflagged := testVolume("vol-3")
		unflagged.KMSKey = "alias/volumes"
		for _, v := range []Volume{keyless, unflagged} {
			if err := tx.PutVolume(v); !errors.Is(err, ErrCorrupt) {
				t.Errorf("PutVolume(KMSEncrypted %t, KMSKey %q) = %v, want ErrCorrupt", v.KMSEncrypted, v.KMSKey, err)
			}
		}
		// Damage on disk: garbage, a newer version, a record that decodes but
		// does not validate.
		b := tx.tx.Bucket(bucketGateways)
		for key, raw := range map[string]string{
			"garbage": "{not json",
			"newer":   `{"V":99,"ID":"sgw-1","ARN":"x/sgw-1","State":"STATE_RUNNING"}`,
			"invalid": `{"V":1,"ID":"nope"}`,
		} {
			if err := b.Put([]byte(key), []byte(raw)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *Tx) error {
		if _, err := tx.Gateway("garbage"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("garbage: %v, want ErrCorrupt", err)
		}
		if _, err := tx.Gateway("newer"); !errors.Is(err, ErrUnsupportedVersion) {
			t.Errorf("newer: %v, want ErrUnsupportedVersion", err)
		}
		if _, err := tx.Gateway("invalid"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("invalid: %v, want ErrCorrupt", err)
		}
		if _, err := tx.Gateways(); err == nil {
			t.Errorf("Gateways over damaged records succeeded")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDeletes(t *testing.T) {
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v := testVolume("vol-0123456789ABCDEF0")
	err = db.Update(func(tx *Tx) error {
		if err := tx.DeleteSchedule(v.ARN); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeleteSchedule(absent) = %v", err)
		}
		if err := tx.DeleteChapCredential(v.TargetARN, "iqn.x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeleteChapCredential(absent) = %v", err)
		}
		if err := tx.PutTags(v.ARN, []Tag{{"a", "b"}}); err != nil {
			return err
		}
		if err := tx.PutTags(v.ARN, nil); err != nil {
			return err
		}
		if tags, err := tx.Tags(v.ARN); err != nil || len(tags) != 0 {
			t.Errorf("tags after clearing = %v, %v", tags, err)
		}
		if err := tx.PutClientToken(ClientToken{Scope: "s", Token: "t", ResultARN: v.ARN}); err != nil {
			return err
		}
		if err := tx.DeleteClientTokensFor(v.ARN); err != nil {
			return err
		}
		if _, err := tx.ClientToken("s", "t"); !errors.Is(err, ErrNotFound) {
			t.Errorf("token after DeleteClientTokensFor: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCheckFindsDanglingRecords(t *testing.T) {
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	g := testGateway()
	v := testVolume("vol-0123456789ABCDEF0")
	err = db.Update(func(tx *Tx) error {
		if err := tx.PutGateway(g); err != nil {
			return err
		}
		if err := tx.PutVolume(v); err != nil {
			return err
		}
		if err := tx.PutTags(v.ARN, []Tag{{"k", "v"}}); err != nil {
			return err
		}
		return tx.Check()
	})
	if err != nil {
		t.Fatalf("consistent catalog: %v", err)
	}
	err = db.Update(func(tx *Tx) error {
		dup := testVolume("vol-0123456789ABCDEF1")
		dup.TargetName, dup.TargetARN = v.TargetName, v.TargetARN
		if err := tx.PutVolume(dup); err != nil {
			return err
		}
		if err := tx.PutChapCredential(ChapCredential{TargetARN: g.ARN + "/target/iqn.1997-05.com.amazon:gone", InitiatorName: "i", SecretToAuthenticateInitiator: "s"}); err != nil {
			return err
		}
		gone := g.ARN + "/volume/vol-0000000000000000A"
		if err := tx.PutTags(gone, []Tag{{"k", "v"}}); err != nil {
			return err
		}
		err := tx.Check()
		for _, want := range []string{"TargetName", "CHAP credential", "tags of missing resource " + gone} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Check() = %v, want it to report %q", err, want)
			}
		}
		if !errors.Is(err, ErrInconsistent) {
			t.Errorf("Check() = %v, not ErrInconsistent", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestVolumesListedAfterEveryWrite: the volumes a read-only transaction
// lists are those the last committed write left, though listings of the
// same state share one decoding (DB.volumes): a commit, a failed write and
// a caller changing its copy each leave the next listing right, and a write
// transaction lists its own puts.
func TestVolumesListedAfterEveryWrite(t *testing.T) {
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ids := func(vs []Volume) string {
		var s []string
		for _, v := range vs {
			s = append(s, v.ID+"/"+v.TargetName)
		}
		return strings.Join(s, ",")
	}
	listed := func() string {
		t.Helper()
		var got string
		if err := db.View(func(tx *Tx) error {
			vs, err := tx.Volumes()
			got = ids(vs)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	put := func(id string) error {
		return db.Update(func(tx *Tx) error { return tx.PutVolume(testVolume(id)) })
	}
	if got := listed(); got != "" {
		t.Fatalf("empty catalog lists %q", got)
	}
	if err := put("vol-1"); err != nil {
		t.Fatal(err)
	}
	if got, want := listed(), "vol-1/t-vol-1"; got != want {
		t.Fatalf("after one put: %q, want %q", got, want)
	}
	// A caller's copy is its own.
	if err := db.View(func(tx *Tx) error {
		vs, err := tx.Volumes()
		if err != nil {
			return err
		}
		vs[0].TargetName = "changed"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := listed(), "vol-1/t-vol-1"; got != want {
		t.Fatalf("after a caller changed its copy: %q, want %q", got, want)
	}
	// A write transaction lists what it has put so far.
	boom := errors.New("boom")
	err = db.Update(func(tx *Tx) error {
		if err := tx.PutVolume(testVolume("vol-2")); err != nil {
			return err
		}
		vs, err := tx.Volumes()
		if err != nil {
			return err
		}
		if got, want := ids(vs), "vol-1/t-vol-1,vol-2/t-vol-2"; got != want {
			t.Errorf("inside the write: %q, want %q", got, want)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	if got, want := listed(), "vol-1/t-vol-1"; got != want {
		t.Fatalf("after a failed write: %q, want %q", got, want)
	}
	// The failed write's ID is the next commit's: that commit's state is
	// listed, not the state before it.
	if err := put("vol-3"); err != nil {
		t.Fatal(err)
	}
	if got, want := listed(), "vol-1/t-vol-1,vol-3/t-vol-3"; got != want {
		t.Fatalf("after the next commit: %q, want %q", got, want)
	}
	if err := db.Update(func(tx *Tx) error { return tx.DeleteVolume("vol-1") }); err != nil {
		t.Fatal(err)
	}
	if got, want := listed(), "vol-3/t-vol-3"; got != want {
		t.Fatalf("after a delete: %q, want %q", got, want)
	}
}

// BenchmarkVolumes lists 32 volumes in a read-only transaction: decoded
// from their records every time (a Tx without its DB, as before the
// listings shared one decoding), and shared by transactions of one ID.
func BenchmarkVolumes(b *testing.B) {
	db, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *Tx) error {
		for i := range 32 {
			if err := tx.PutVolume(testVolume(fmt.Sprintf("vol-%017d", i))); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	list := func(b *testing.B, view func(func(*Tx) error) error) {
		for b.Loop() {
			if err := view(func(tx *Tx) error {
				vs, err := tx.Volumes()
				if err == nil && len(vs) != 32 {
					err = fmt.Errorf("%d volumes", len(vs))
				}
				return err
			}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("decoded", func(b *testing.B) {
		list(b, func(fn func(*Tx) error) error {
			return db.bolt.View(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) })
		})
	})
	b.Run("shared", func(b *testing.B) { list(b, db.View) })
}
