package control

import (
	"context"
	"errors"
	mathrand "math/rand"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/catalog"
)

const (
	testRegion  = "us-east-1"
	testAccount = "111122223333"
	gib         = int64(1) << 30
)

// fakeClock is an injectable clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

type fixture struct {
	t      *testing.T
	dir    string
	cat    *catalog.DB
	engine *memEngine
	// wrapped, when set, is the engine the service is given instead of
	// engine (which it wraps).
	wrapped  VolumeEngine
	exporter *memExporter
	clock    *fakeClock
	// limiter, when set, is the service's BandwidthLimiter.
	limiter BandwidthLimiter
	// keys, when set, are the encryption keys the gateway has.
	keys Keys
	svc  *Service
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), clock: &fakeClock{time.Date(2026, 11, 23, 10, 0, 0, 123e6, time.UTC)}}
	f.engine = newMemEngine(f.clock.now)
	f.exporter = newMemExporter()
	f.open(1)
	return f
}

// open (re)opens the catalog and builds a Service over it, as a process
// start does.
func (f *fixture) open(seed int64) {
	f.t.Helper()
	if f.cat != nil {
		f.check()
		f.cat.Close()
	}
	cat, err := catalog.Open(f.dir)
	if err != nil {
		f.t.Fatal(err)
	}
	f.cat = cat
	f.t.Cleanup(func() { cat.Close() })
	// Every test ends with the catalog's cross-record invariants checked
	// (runs before the Close above).
	f.t.Cleanup(func() {
		if f.cat == cat {
			f.check()
		}
	})
	var engine VolumeEngine = f.engine
	if f.wrapped != nil {
		engine = f.wrapped
	}
	svc, err := New(Config{
		Catalog: cat, Engine: engine, Exporter: f.exporter, Now: f.clock.now,
		Rand: mathrand.New(mathrand.NewSource(seed)), Region: testRegion, Account: testAccount,
		ISCSIAddress: "127.0.0.1", ISCSIPort: 3260, DiskDir: filepath.Join(f.dir, "disks"),
		CacheDiskSize: 4 * gib, UploadBufferDiskSize: 2 * gib, Bandwidth: f.limiter, Keys: f.keys,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	f.svc = svc
}

// check runs the catalog's whole-structure invariant check.
func (f *fixture) check() {
	f.t.Helper()
	if err := f.cat.View(func(tx *catalog.Tx) error { return tx.Check() }); err != nil {
		f.t.Errorf("catalog invariants: %v", err)
	}
}

// activated returns the ARN of a gateway with cache and upload buffer.
func (f *fixture) activated() string {
	f.t.Helper()
	ctx := context.Background()
	key, err := f.svc.IssueActivationKey(ctx, testRegion, "CACHED")
	if err != nil {
		f.t.Fatal(err)
	}
	arn, err := f.svc.ActivateGateway(ctx, ActivateGatewayInput{
		ActivationKey: key, GatewayName: "gw1", GatewayTimezone: "GMT-8:00", GatewayRegion: testRegion, GatewayType: "CACHED",
	})
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.svc.AddCache(ctx, arn, []string{"cache0"}); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.svc.AddUploadBuffer(ctx, arn, []string{"buffer0"}); err != nil {
		f.t.Fatal(err)
	}
	return arn
}

func (f *fixture) volume(gw, target string) string {
	f.t.Helper()
	arn, _, err := f.svc.CreateCachediSCSIVolume(context.Background(), CreateCachediSCSIVolumeInput{
		GatewayARN: gw, VolumeSizeInBytes: gib, TargetName: target, NetworkInterfaceID: "127.0.0.1",
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return arn
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if !IsCode(err, code) {
		t.Fatalf("err = %v, want code %s", err, code)
	}
}

var (
	gatewayARNRe = regexp.MustCompile(`^arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-[0-9A-F]{8}$`)
	volumeARNRe  = regexp.MustCompile(`/volume/vol-[0-9A-F]{17}$`)
	snapIDRe     = regexp.MustCompile(`^snap-[0-9a-f]{17}$`)
	keyRe        = regexp.MustCompile(`^[A-Z0-9]{5}(-[A-Z0-9]{5}){4}$`)
)

func TestActivation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	_, err := f.svc.ActivateGateway(ctx, ActivateGatewayInput{ActivationKey: "NOPE1-NOPE2", GatewayRegion: testRegion, GatewayType: "CACHED"})
	wantCode(t, err, CodeActivationKeyNotFound)

	key, err := f.svc.IssueActivationKey(ctx, testRegion, "STORED")
	if err != nil || !keyRe.MatchString(key) {
		t.Fatalf("key %q, %v", key, err)
	}
	_, err = f.svc.ActivateGateway(ctx, ActivateGatewayInput{ActivationKey: key, GatewayRegion: testRegion, GatewayType: "STORED"})
	wantCode(t, err, CodeNotSupported)

	expired, _ := f.svc.IssueActivationKey(ctx, testRegion, "CACHED")
	f.clock.t = f.clock.t.Add(ActivationKeyLifetime + time.Second)
	_, err = f.svc.ActivateGateway(ctx, ActivateGatewayInput{ActivationKey: expired, GatewayRegion: testRegion, GatewayType: "CACHED"})
	wantCode(t, err, CodeActivationKeyExpired)
	// An expired key is gone, not merely refused.
	_, err = f.svc.ActivateGateway(ctx, ActivateGatewayInput{ActivationKey: expired, GatewayRegion: testRegion, GatewayType: "CACHED"})
	wantCode(t, err, CodeActivationKeyNotFound)

	key, _ = f.svc.IssueActivationKey(ctx, testRegion, "CACHED")
	stale, _ := f.svc.IssueActivationKey(ctx, testRegion, "CACHED")
	arn, err := f.svc.ActivateGateway(ctx, ActivateGatewayInput{ActivationKey: key, GatewayName: "gw", GatewayTimezone: "GMT", GatewayRegion: testRegion})
	if err != nil || !gatewayARNRe.MatchString(arn) {
		t.Fatalf("ActivateGateway = %q, %v", arn, err)
	}
	_, err = f.svc.ActivateGateway(ctx, ActivateGatewayInput{ActivationKey: key, GatewayRegion: testRegion})
	wantCode(t, err, CodeActivationKeyNotFound)
	_, err = f.svc.ActivateGateway(ctx, ActivateGatewayInput{ActivationKey: stale, GatewayRegion: testRegion})
	wantCode(t, err, CodeActivationKeyInvalid)
	if _, err := f.svc.IssueActivationKey(ctx, testRegion, "CACHED"); !errors.Is(err, ErrAlreadyActivated) {
		t.Fatalf("IssueActivationKey after activation = %v", err)
	}

	gws, next, err := f.svc.ListGateways(ctx, "", 0)
	if err != nil || len(gws) != 1 || next != "" || gws[0].GatewayARN != arn || gws[0].GatewayOperationalState != "ACTIVE" {
		t.Fatalf("ListGateways = %+v %q %v", gws, next, err)
	}
	info, err := f.svc.DescribeGatewayInformation(ctx, arn)
	if err != nil || info.GatewayState != catalog.GatewayRunning || info.GatewayType != "CACHED" ||
		len(info.GatewayNetworkInterfaces) != 1 || info.GatewayNetworkInterfaces[0].Ipv4Address != "127.0.0.1" {
		t.Fatalf("DescribeGatewayInformation = %+v, %v", info, err)
	}
	name := "renamed"
	if _, got, err := f.svc.UpdateGatewayInformation(ctx, UpdateGatewayInformationInput{GatewayARN: arn, GatewayName: &name}); err != nil || got != name {
		t.Fatalf("UpdateGatewayInformation = %q, %v", got, err)
	}
	_, err = f.svc.DescribeGatewayInformation(ctx, "arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-00000000")
	wantCode(t, err, CodeGatewayNotFound)
	// Another region's ARN for the same ID is not this gateway.
	_, err = f.svc.DescribeGatewayInformation(ctx, regexp.MustCompile(`us-east-1`).ReplaceAllString(arn, "eu-west-1"))
	wantCode(t, err, CodeGatewayNotFound)
}

func TestLocalDisks(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key, _ := f.svc.IssueActivationKey(ctx, testRegion, "CACHED")
	gw, err := f.svc.ActivateGateway(ctx, ActivateGatewayInput{ActivationKey: key, GatewayTimezone: "GMT", GatewayRegion: testRegion, GatewayType: "CACHED"})
	if err != nil {
		t.Fatal(err)
	}
	disks, err := f.svc.ListLocalDisks(ctx, gw)
	if err != nil || len(disks) != 2 {
		t.Fatalf("ListLocalDisks = %+v, %v", disks, err)
	}
	for _, d := range disks {
		st, err := os.Stat(d.DiskPath)
		if err != nil || st.Size() != d.DiskSizeInBytes || d.DiskStatus != "present" || d.DiskAllocationType != catalog.DiskAvailable {
			t.Errorf("disk %+v: stat %v", d, err)
		}
	}
	_, _, err = f.svc.CreateCachediSCSIVolume(ctx, CreateCachediSCSIVolumeInput{GatewayARN: gw, VolumeSizeInBytes: gib, TargetName: "t", NetworkInterfaceID: "127.0.0.1"})
	wantCode(t, err, CodeInvalidParameters)

	_, err = f.svc.AddCache(ctx, gw, []string{"nosuchdisk"})
	wantCode(t, err, CodeDiskDoesNotExist)
	if _, err := f.svc.AddCache(ctx, gw, []string{"cache0"}); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.AddCache(ctx, gw, []string{"cache0"})
	wantCode(t, err, CodeDiskAlreadyAllocated)
	_, err = f.svc.AddUploadBuffer(ctx, gw, []string{"cache0"})
	wantCode(t, err, CodeDiskAlreadyAllocated)
	if _, err := f.svc.AddUploadBuffer(ctx, gw, []string{"buffer0"}); err != nil {
		t.Fatal(err)
	}
	c, err := f.svc.DescribeCache(ctx, gw)
	if err != nil || c.CacheAllocatedInBytes != 4*gib || len(c.DiskIDs) != 1 || c.Stats != nil {
		t.Fatalf("DescribeCache = %+v, %v", c, err)
	}
	b, err := f.svc.DescribeUploadBuffer(ctx, gw)
	if err != nil || b.AllocatedInBytes != 2*gib || b.UsedInBytes != nil {
		t.Fatalf("DescribeUploadBuffer = %+v, %v", b, err)
	}
	if len(f.engine.disks) != 2 || f.engine.disks[0].Use != DiskUseCache || f.engine.disks[1].Use != DiskUseUploadBuffer {
		t.Fatalf("engine disks = %+v", f.engine.disks)
	}
	// A restart hands the allocated disks to the engine again.
	f.open(2)
	if len(f.engine.disks) != 4 || f.engine.disks[2] != f.engine.disks[0] || f.engine.disks[3] != f.engine.disks[1] {
		t.Fatalf("engine disks after restart = %+v", f.engine.disks)
	}
}

func TestVolumesLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	gw := f.activated()

	in := CreateCachediSCSIVolumeInput{GatewayARN: gw, VolumeSizeInBytes: 2 * gib, TargetName: "vol-a", NetworkInterfaceID: "127.0.0.1", ClientToken: "tok-1"}
	volA, targetA, err := f.svc.CreateCachediSCSIVolume(ctx, in)
	if err != nil || !volumeARNRe.MatchString(volA) || targetA != gw+"/target/iqn.1997-05.com.amazon:vol-a" {
		t.Fatalf("create = %q %q %v", volA, targetA, err)
	}
	// The same ClientToken returns the same volume; different parameters
	// under it are refused.
	again, _, err := f.svc.CreateCachediSCSIVolume(ctx, in)
	if err != nil || again != volA {
		t.Fatalf("idempotent create = %q, %v; want %q", again, err, volA)
	}
	diff := in
	diff.VolumeSizeInBytes = 3 * gib
	_, _, err = f.svc.CreateCachediSCSIVolume(ctx, diff)
	wantCode(t, err, CodeInvalidParameters)

	dup := in
	dup.ClientToken = ""
	_, _, err = f.svc.CreateCachediSCSIVolume(ctx, dup)
	wantCode(t, err, CodeTargetAlreadyExists)
	for _, bad := range []CreateCachediSCSIVolumeInput{
		{GatewayARN: gw, VolumeSizeInBytes: gib - 1, TargetName: "x", NetworkInterfaceID: "127.0.0.1"},
		{GatewayARN: gw, VolumeSizeInBytes: 32<<40 + 1, TargetName: "x", NetworkInterfaceID: "127.0.0.1"},
		{GatewayARN: gw, VolumeSizeInBytes: gib, TargetName: "x", NetworkInterfaceID: "10.9.9.9"},
	} {
		_, _, err = f.svc.CreateCachediSCSIVolume(ctx, bad)
		wantCode(t, err, CodeInvalidParameters)
	}
	_, _, err = f.svc.CreateCachediSCSIVolume(ctx, CreateCachediSCSIVolumeInput{GatewayARN: gw, VolumeSizeInBytes: gib, TargetName: "x", NetworkInterfaceID: "127.0.0.1", KMSEncrypted: true})
	wantCode(t, err, CodeInvalidParameters)
	_, _, err = f.svc.CreateCachediSCSIVolume(ctx, CreateCachediSCSIVolumeInput{GatewayARN: gw, VolumeSizeInBytes: gib, TargetName: "x", NetworkInterfaceID: "127.0.0.1", SnapshotID: "snap-0123456789abcdef0"})
	wantCode(t, err, CodeSnapshotNotFound)

	volB := f.volume(gw, "vol-b")
	if got := f.exporter.iqns(); len(got) != 2 || got[0] != "iqn.1997-05.com.amazon:vol-a" {
		t.Fatalf("exported = %v", got)
	}
	if spec, _ := f.exporter.spec("iqn.1997-05.com.amazon:vol-a"); spec.LUN != 0 || spec.VolumeID != volumeIDOf(volA) {
		t.Fatalf("export spec = %+v", spec)
	}

	vols, err := f.svc.DescribeCachediSCSIVolumes(ctx, []string{volB, volA})
	if err != nil || len(vols) != 2 || vols[0].VolumeARN > vols[1].VolumeARN {
		t.Fatalf("describe = %+v, %v", vols, err)
	}
	a := vols[0]
	if a.VolumeARN != volA {
		a = vols[1]
	}
	if a.VolumeType != VolumeTypeCached || a.VolumeSizeInBytes != 2*gib || a.ISCSI.NetworkInterfacePort != 3260 ||
		a.ISCSI.LunNumber != 0 || a.ISCSI.ChapEnabled || a.ISCSI.TargetARN != targetA || a.VolumeUsedInBytes == nil ||
		!a.CreatedDate.Equal(f.clock.t) {
		t.Fatalf("volume A = %+v", a)
	}
	_, err = f.svc.DescribeCachediSCSIVolumes(ctx, []string{volA, gw + "/volume/vol-0000000000000000A"})
	wantCode(t, err, CodeVolumeNotFound)

	// Pagination: one per page, in ARN order, nothing lost.
	var seen []string
	marker := ""
	for i := 0; i < 3; i++ {
		_, page, next, err := f.svc.ListVolumes(ctx, gw, marker, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page {
			seen = append(seen, v.VolumeARN)
		}
		if marker = next; marker == "" {
			break
		}
	}
	if len(seen) != 2 || seen[0] >= seen[1] {
		t.Fatalf("paged ListVolumes = %v", seen)
	}
	// Without a gateway: every gateway's volumes.
	if arn, all, _, err := f.svc.ListVolumes(ctx, "", "", 0); err != nil || arn != "" || len(all) != 2 || all[0].GatewayARN != gw {
		t.Fatalf("ListVolumes() = %q %+v %v", arn, all, err)
	}

	// Recovery points and snapshots.
	_, rps, err := f.svc.ListVolumeRecoveryPoints(ctx, gw)
	if err != nil || len(rps) != 2 || rps[0].VolumeRecoveryPointTime != "2026-11-23T10:00:00.123Z" {
		t.Fatalf("recovery points = %+v, %v", rps, err)
	}
	snap, varn, rpt, err := f.svc.CreateSnapshotFromVolumeRecoveryPoint(ctx, SnapshotInput{VolumeARN: volA, SnapshotDescription: "d", Tags: []Tag{{"k", "v"}}})
	if err != nil || !snapIDRe.MatchString(snap) || varn != volA || rpt != "2026-11-23T10:00:00.123Z" {
		t.Fatalf("CreateSnapshotFromVolumeRecoveryPoint = %q %q %q %v", snap, varn, rpt, err)
	}
	snap2, _, err := f.svc.CreateSnapshot(ctx, SnapshotInput{VolumeARN: volB, SnapshotDescription: "forced"})
	if err != nil || !snapIDRe.MatchString(snap2) || snap2 == snap {
		t.Fatalf("CreateSnapshot = %q, %v", snap2, err)
	}
	// A volume restored from the snapshot; smaller than it is refused.
	_, _, err = f.svc.CreateCachediSCSIVolume(ctx, CreateCachediSCSIVolumeInput{GatewayARN: gw, VolumeSizeInBytes: gib, TargetName: "small", NetworkInterfaceID: "127.0.0.1", SnapshotID: snap})
	wantCode(t, err, CodeInvalidParameters)
	restored, _, err := f.svc.CreateCachediSCSIVolume(ctx, CreateCachediSCSIVolumeInput{GatewayARN: gw, VolumeSizeInBytes: 2 * gib, TargetName: "restored", NetworkInterfaceID: "127.0.0.1", SnapshotID: snap})
	if err != nil {
		t.Fatal(err)
	}
	if spec := f.engine.volumes[volumeIDOf(restored)]; spec.Source.SnapshotID != snap {
		t.Fatalf("engine spec of restored volume = %+v", spec)
	}
	clone, _, err := f.svc.CreateCachediSCSIVolume(ctx, CreateCachediSCSIVolumeInput{GatewayARN: gw, VolumeSizeInBytes: 2 * gib, TargetName: "clone", NetworkInterfaceID: "127.0.0.1", SourceVolumeARN: volA})
	if err != nil || f.engine.volumes[volumeIDOf(clone)].Source.SourceVolumeID != volumeIDOf(volA) {
		t.Fatalf("clone = %q, %v", clone, err)
	}

	// Delete: off the wire, out of the engine, out of the catalog; its
	// ClientToken is free again.
	if _, err := f.svc.DeleteVolume(ctx, volA); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.exporter.spec("iqn.1997-05.com.amazon:vol-a"); ok {
		t.Fatal("deleted volume still exported")
	}
	if _, ok := f.engine.volumes[volumeIDOf(volA)]; ok {
		t.Fatal("deleted volume still in engine")
	}
	_, err = f.svc.DeleteVolume(ctx, volA)
	wantCode(t, err, CodeVolumeNotFound)
	again, _, err = f.svc.CreateCachediSCSIVolume(ctx, in)
	if err != nil || again == volA {
		t.Fatalf("create after delete with old token = %q, %v", again, err)
	}
}

func TestShutdownRestartAndDelete(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	gw := f.activated()
	vol := f.volume(gw, "data")

	if _, err := f.svc.ShutdownGateway(ctx, gw); err != nil {
		t.Fatal(err)
	}
	if got := f.exporter.iqns(); len(got) != 0 {
		t.Fatalf("exported while shut down: %v", got)
	}
	_, _, err := f.svc.CreateSnapshot(ctx, SnapshotInput{VolumeARN: vol, SnapshotDescription: "x"})
	wantCode(t, err, CodeGatewayNotConnected)
	_, _, err = f.svc.ListVolumeRecoveryPoints(ctx, gw)
	wantCode(t, err, CodeGatewayNotConnected)
	_, err = f.svc.ListLocalDisks(ctx, gw)
	wantCode(t, err, CodeGatewayNotConnected)
	info, _ := f.svc.DescribeGatewayInformation(ctx, gw)
	if info.GatewayState != catalog.GatewayShutdown {
		t.Fatalf("state = %s", info.GatewayState)
	}

	// A restart keeps a shut-down gateway's targets off the wire...
	f.open(3)
	if got := f.exporter.iqns(); len(got) != 0 {
		t.Fatalf("exported after restart while shut down: %v", got)
	}
	if _, err := f.svc.StartGateway(ctx, gw); err != nil {
		t.Fatal(err)
	}
	if got := f.exporter.iqns(); len(got) != 1 {
		t.Fatalf("exported after start: %v", got)
	}
	// ...and puts a running one's back.
	f.exporter.targets = map[string]ExportSpec{}
	f.open(4)
	if got := f.exporter.iqns(); len(got) != 1 || got[0] != IQNPrefix+"data" {
		t.Fatalf("exported after restart: %v", got)
	}

	if _, err := f.svc.DeleteGateway(ctx, gw); err != nil {
		t.Fatal(err)
	}
	if len(f.engine.volumes) != 0 || len(f.exporter.iqns()) != 0 {
		t.Fatalf("after DeleteGateway: engine %v exporter %v", f.engine.volumes, f.exporter.iqns())
	}
	_, err = f.svc.DescribeGatewayInformation(ctx, gw)
	wantCode(t, err, CodeGatewayNotFound)
	// The appliance can be activated again and its disks are free.
	gw2 := f.activated()
	if gw2 == gw {
		t.Fatal("same gateway ID after re-activation")
	}
}

func TestTagsSchedulesChap(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	gw := f.activated()
	vol := f.volume(gw, "data")
	target := gw + "/target/" + IQNPrefix + "data"

	// Tags on a gateway, a volume and a snapshot.
	snap, _, _, err := f.svc.CreateSnapshotFromVolumeRecoveryPoint(ctx, SnapshotInput{VolumeARN: vol, SnapshotDescription: "s"})
	if err != nil {
		t.Fatal(err)
	}
	for _, arn := range []string{gw, vol, f.svc.SnapshotARN(snap)} {
		if _, err := f.svc.AddTagsToResource(ctx, arn, []Tag{{"b", "1"}, {"a", "2"}}); err != nil {
			t.Fatalf("%s: %v", arn, err)
		}
		if _, err := f.svc.AddTagsToResource(ctx, arn, []Tag{{"b", "3"}}); err != nil {
			t.Fatal(err)
		}
		tags, next, err := f.svc.ListTagsForResource(ctx, arn, "", 1)
		if err != nil || len(tags) != 1 || tags[0] != (Tag{"a", "2"}) || next != "b" {
			t.Fatalf("%s page 1 = %v %q %v", arn, tags, next, err)
		}
		tags, next, err = f.svc.ListTagsForResource(ctx, arn, next, 1)
		if err != nil || len(tags) != 1 || tags[0] != (Tag{"b", "3"}) || next != "" {
			t.Fatalf("%s page 2 = %v %q %v", arn, tags, next, err)
		}
		if _, err := f.svc.RemoveTagsFromResource(ctx, arn, []string{"a", "zz"}); err != nil {
			t.Fatal(err)
		}
		tags, _, _ = f.svc.ListTagsForResource(ctx, arn, "", 0)
		if len(tags) != 1 || tags[0].Key != "b" {
			t.Fatalf("%s after remove = %v", arn, tags)
		}
		many := make([]Tag, 50)
		for i := range many {
			many[i] = Tag{Key: "k" + string(rune('A'+i%26)) + string(rune('a'+i/26)), Value: "v"}
		}
		_, err = f.svc.AddTagsToResource(ctx, arn, many)
		wantCode(t, err, CodeInvalidParameters)
	}
	if s, _ := f.engine.Snapshot(ctx, snap); len(s.Tags) != 1 || s.Tags[0] != (Tag{"b", "3"}) {
		t.Fatalf("snapshot tags in engine = %v", s.Tags)
	}
	_, _, err = f.svc.ListTagsForResource(ctx, gw+"/volume/vol-0000000000000000A", "", 0)
	wantCode(t, err, CodeVolumeNotFound)

	// Schedules: a default one, replaced, deleted.
	s, err := f.svc.DescribeSnapshotSchedule(ctx, vol)
	if err != nil || !s.Exists || s.RecurrenceInHours != 24 || s.StartAt != 2 || s.Timezone != "GMT-8:00" {
		t.Fatalf("default schedule = %+v, %v", s, err)
	}
	if _, err := f.svc.UpdateSnapshotSchedule(ctx, SnapshotSchedule{VolumeARN: vol, StartAt: 5, RecurrenceInHours: 3}); !IsCode(err, CodeInvalidParameters) {
		t.Fatalf("recurrence 3: %v", err)
	}
	if _, err := f.svc.UpdateSnapshotSchedule(ctx, SnapshotSchedule{VolumeARN: vol, StartAt: 5, RecurrenceInHours: 12, Description: "twice"}); err != nil {
		t.Fatal(err)
	}
	f.open(5) // persisted
	s, _ = f.svc.DescribeSnapshotSchedule(ctx, vol)
	if s.StartAt != 5 || s.RecurrenceInHours != 12 || s.Description != "twice" {
		t.Fatalf("schedule after restart = %+v", s)
	}
	if all, err := f.svc.SnapshotSchedules(ctx); err != nil || len(all) != 1 || all[0].VolumeARN != vol || all[0].Timezone != "GMT-8:00" {
		t.Fatalf("SnapshotSchedules = %+v, %v", all, err)
	}
	if _, err := f.svc.DeleteSnapshotSchedule(ctx, vol); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.DeleteSnapshotSchedule(ctx, vol)
	wantCode(t, err, CodeSnapshotScheduleNotFound)

	// CHAP: stored, enforced through the exporter, removable.
	_, _, err = f.svc.UpdateChapCredentials(ctx, ChapCredential{TargetARN: gw + "/target/" + IQNPrefix + "none", InitiatorName: "iqn.x", SecretToAuthenticateInitiator: "111111111111"})
	wantCode(t, err, CodeTargetNotFound)
	_, _, err = f.svc.UpdateChapCredentials(ctx, ChapCredential{TargetARN: target, InitiatorName: "iqn.x", SecretToAuthenticateInitiator: "111111111111", SecretToAuthenticateTarget: "111111111111"})
	wantCode(t, err, CodeInvalidParameters)
	if _, _, err := f.svc.UpdateChapCredentials(ctx, ChapCredential{TargetARN: target, InitiatorName: "iqn.x", SecretToAuthenticateInitiator: "111111111111", SecretToAuthenticateTarget: "222222222222"}); err != nil {
		t.Fatal(err)
	}
	spec, _ := f.exporter.spec(IQNPrefix + "data")
	if len(spec.CHAP) != 1 || spec.CHAP[0].SecretToAuthenticateTarget != "222222222222" {
		t.Fatalf("exported CHAP = %+v", spec.CHAP)
	}
	creds, err := f.svc.DescribeChapCredentials(ctx, target)
	if err != nil || len(creds) != 1 || creds[0].InitiatorName != "iqn.x" {
		t.Fatalf("DescribeChapCredentials = %+v, %v", creds, err)
	}
	vols, _ := f.svc.DescribeCachediSCSIVolumes(ctx, []string{vol})
	if !vols[0].ISCSI.ChapEnabled {
		t.Fatal("ChapEnabled false with a credential")
	}
	_, _, err = f.svc.DeleteChapCredentials(ctx, target, "iqn.other")
	wantCode(t, err, CodeInitiatorNotFound)
	if _, _, err := f.svc.DeleteChapCredentials(ctx, target, "iqn.x"); err != nil {
		t.Fatal(err)
	}
	if spec, _ := f.exporter.spec(IQNPrefix + "data"); len(spec.CHAP) != 0 {
		t.Fatalf("CHAP after delete = %+v", spec.CHAP)
	}

	// Initiators come from the exporter.
	f.exporter.initiators[IQNPrefix+"data"] = []string{"iqn.b", "iqn.a"}
	ini, err := f.svc.ListVolumeInitiators(ctx, vol)
	if err != nil || len(ini) != 2 || ini[0] != "iqn.a" {
		t.Fatalf("ListVolumeInitiators = %v, %v", ini, err)
	}

	// Snapshots: delete, then not found.
	if err := f.svc.DeleteSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	wantCode(t, f.svc.DeleteSnapshot(ctx, snap), CodeSnapshotNotFound)
}

// TestConcurrentCreates races creates through the one lock that keeps the
// control plane's checks true: one ClientToken makes one volume, one
// TargetName one target.
func TestConcurrentCreates(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	gw := f.activated()
	const n = 16
	type result struct {
		arn string
		err error
	}
	results := make(chan result, 2*n)
	for i := 0; i < n; i++ {
		go func() {
			arn, _, err := f.svc.CreateCachediSCSIVolume(ctx, CreateCachediSCSIVolumeInput{
				GatewayARN: gw, VolumeSizeInBytes: gib, TargetName: "same-token", NetworkInterfaceID: "127.0.0.1", ClientToken: "tok-race",
			})
			results <- result{arn, err}
		}()
		go func(i int) {
			arn, _, err := f.svc.CreateCachediSCSIVolume(ctx, CreateCachediSCSIVolumeInput{
				GatewayARN: gw, VolumeSizeInBytes: gib, TargetName: "same-target", NetworkInterfaceID: "127.0.0.1",
			})
			results <- result{"target:" + arn, err}
		}(i)
	}
	tokenARNs := map[string]bool{}
	targetWins, targetLosses := 0, 0
	for i := 0; i < 2*n; i++ {
		r := <-results
		switch {
		case len(r.arn) > 7 && r.arn[:7] == "target:" && r.err == nil:
			targetWins++
		case len(r.arn) == 7 && IsCode(r.err, CodeTargetAlreadyExists):
			targetLosses++
		case r.err == nil:
			tokenARNs[r.arn] = true
		default:
			t.Fatalf("unexpected result %+v", r)
		}
	}
	if len(tokenARNs) != 1 || targetWins != 1 || targetLosses != n-1 {
		t.Fatalf("token volumes %v, target wins %d losses %d", tokenARNs, targetWins, targetLosses)
	}
	if len(f.engine.volumes) != 2 {
		t.Fatalf("engine has %d volumes, want 2", len(f.engine.volumes))
	}
}

func TestVolumeQuota(t *testing.T) {
	f := newFixture(t)
	gw := f.activated()
	for i := 0; i < MaxVolumesPerGateway; i++ {
		f.volume(gw, "v"+strconv.Itoa(i))
	}
	_, _, err := f.svc.CreateCachediSCSIVolume(context.Background(), CreateCachediSCSIVolumeInput{
		GatewayARN: gw, VolumeSizeInBytes: gib, TargetName: "one-too-many", NetworkInterfaceID: "127.0.0.1",
	})
	wantCode(t, err, CodeMaximumVolumeCount)
}
