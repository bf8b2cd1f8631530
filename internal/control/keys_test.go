package control

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/volgw/volgw/internal/catalog"
)

// keySet is Keys over a set of names: the keyring main wires in, reduced
// to what the control plane asks of it.
type keySet map[string]bool

func (k keySet) Has(name string) bool { return k[name] }

const (
	testKey   = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	testAlias = "alias/volumes"
	// otherKey is well formed but not in the gateway's keyring.
	otherKey = "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000"
)

func wantError(t *testing.T, err error, code, message string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != code || e.Message != message {
		t.Fatalf("err = %v, want %s %q", err, code, message)
	}
}

// engineKey is the key the engine was asked to seal a volume with.
func (f *fixture) engineKey(arn string) string {
	f.t.Helper()
	f.engine.mu.Lock()
	defer f.engine.mu.Unlock()
	spec, ok := f.engine.volumes[volumeIDOf(arn)]
	if !ok {
		f.t.Fatalf("the engine holds no volume %s", arn)
	}
	return spec.KMSKey
}

// describedKey is the KMSKey DescribeCachediSCSIVolumes shows for a volume.
func (f *fixture) describedKey(arn string) string {
	f.t.Helper()
	vols, err := f.svc.DescribeCachediSCSIVolumes(context.Background(), []string{arn})
	if err != nil || len(vols) != 1 {
		f.t.Fatalf("describe %s: %+v %v", arn, vols, err)
	}
	return vols[0].KMSKey
}

func (f *fixture) volumeCount(gw string) int {
	f.t.Helper()
	_, infos, _, err := f.svc.ListVolumes(context.Background(), gw, "", 0)
	if err != nil {
		f.t.Fatal(err)
	}
	return len(infos)
}

// TestCreateVolumeKMSParameters: the two rules AWS states about
// KMSEncrypted and KMSKey, and a key the gateway does not have, each
// refused with InvalidParameters before anything is created.
func TestCreateVolumeKMSParameters(t *testing.T) {
	f := newFixture(t)
	f.keys = keySet{testKey: true}
	f.open(2)
	ctx := context.Background()
	gw := f.activated()
	in := func(encrypted bool, key string) CreateCachediSCSIVolumeInput {
		return CreateCachediSCSIVolumeInput{
			GatewayARN: gw, VolumeSizeInBytes: gib, TargetName: "enc", NetworkInterfaceID: "127.0.0.1",
			KMSEncrypted: encrypted, KMSKey: key,
		}
	}
	for _, c := range []struct {
		in      CreateCachediSCSIVolumeInput
		message string
	}{
		{in(true, ""), "KMSEncrypted is set to true, but KMSKey is missing."},
		{in(false, testKey), "KMSKey can only be set when KMSEncrypted is true."},
		{in(true, otherKey), "The specified KMSKey " + otherKey + " was not found: the gateway has no key by that name."},
	} {
		_, _, err := f.svc.CreateCachediSCSIVolume(ctx, c.in)
		wantError(t, err, CodeInvalidParameters, c.message)
	}
	if n := f.volumeCount(gw); n != 0 || len(f.exporter.iqns()) != 0 {
		t.Fatalf("refused creates left %d volumes, exported %v", n, f.exporter.iqns())
	}

	// A gateway without keys has none to offer.
	f.keys = nil
	f.open(3)
	_, _, err := f.svc.CreateCachediSCSIVolume(ctx, in(true, testKey))
	wantError(t, err, CodeInvalidParameters, "The specified KMSKey "+testKey+" was not found: the gateway has no key by that name.")
}

// keyRefusingEngine answers every create as an engine does that finds it
// has not the key after all (the keyring changed since control asked).
type keyRefusingEngine struct{ *memEngine }

func (e keyRefusingEngine) CreateVolume(ctx context.Context, spec VolumeSpec) error {
	return fmt.Errorf("volume: create %s: %w", spec.VolumeID, fmt.Errorf("seal: key %q: %w", spec.KMSKey, ErrKeyUnavailable))
}

// TestEngineKeyUnavailable: the engine's ErrKeyUnavailable is
// InvalidParameters, and nothing is named in the catalog.
func TestEngineKeyUnavailable(t *testing.T) {
	f := newFixture(t)
	f.keys = keySet{testKey: true}
	f.wrapped = keyRefusingEngine{f.engine}
	f.open(2)
	gw := f.activated()
	_, _, err := f.svc.CreateCachediSCSIVolume(context.Background(), CreateCachediSCSIVolumeInput{
		GatewayARN: gw, VolumeSizeInBytes: gib, TargetName: "enc", NetworkInterfaceID: "127.0.0.1",
		KMSEncrypted: true, KMSKey: testKey,
	})
	wantError(t, err, CodeInvalidParameters, "An encryption key the operation needs is not available to the gateway.")
	if !errors.Is(err, ErrKeyUnavailable) {
		t.Fatalf("the engine's cause is lost: %v", err)
	}
	if n := f.volumeCount(gw); n != 0 {
		t.Fatalf("%d volumes after a refused create", n)
	}
}

// TestVolumeKeys: a volume's key goes to the engine, into the catalog
// (kept across a restart) and out through DescribeCachediSCSIVolumes; a
// volume made from a snapshot or another volume keeps its source's key
// unless the request names another; a source sealed with a key the
// gateway no longer has cannot be restored.
func TestVolumeKeys(t *testing.T) {
	f := newFixture(t)
	f.keys = keySet{testKey: true, testAlias: true}
	f.open(2)
	ctx := context.Background()
	gw := f.activated()
	create := func(target string, encrypted bool, key, snapshot, source string) (string, error) {
		arn, _, err := f.svc.CreateCachediSCSIVolume(ctx, CreateCachediSCSIVolumeInput{
			GatewayARN: gw, VolumeSizeInBytes: gib, TargetName: target, NetworkInterfaceID: "127.0.0.1",
			KMSEncrypted: encrypted, KMSKey: key, SnapshotID: snapshot, SourceVolumeARN: source, ClientToken: "tok-" + target,
		})
		return arn, err
	}
	enc, err := create("enc", true, testKey, "", "")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := create("plain", false, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.engineKey(enc); got != testKey {
		t.Fatalf("engine asked to seal with %q", got)
	}
	if got := f.engineKey(plain); got != "" {
		t.Fatalf("plain volume: engine asked to seal with %q", got)
	}
	// A retry with the same ClientToken is the same volume; the token
	// with another key is another request.
	if again, err := create("enc", true, testKey, "", ""); err != nil || again != enc {
		t.Fatalf("retry: %s %v", again, err)
	}
	_, err = create("enc", true, testAlias, "", "")
	wantError(t, err, CodeInvalidParameters, "The ClientToken has already been used with different parameters.")

	f.open(3) // a restart: the key is the catalog's
	if got := f.describedKey(enc); got != testKey {
		t.Fatalf("described KMSKey %q, want %q", got, testKey)
	}
	if got := f.describedKey(plain); got != "" {
		t.Fatalf("plain volume described with KMSKey %q", got)
	}
	if err := f.cat.View(func(tx *catalog.Tx) error {
		v, err := tx.Volume(volumeIDOf(enc))
		if err == nil && (!v.KMSEncrypted || v.KMSKey != testKey) {
			err = fmt.Errorf("catalog record %+v", v)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}

	snap, _, err := f.svc.CreateSnapshot(ctx, SnapshotInput{VolumeARN: enc})
	if err != nil {
		t.Fatal(err)
	}
	plainSnap, _, err := f.svc.CreateSnapshot(ctx, SnapshotInput{VolumeARN: plain})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		target            string
		encrypted         bool
		key, snap, source string
		want              string
	}{
		{"restored", false, "", snap, "", testKey},             // the snapshot's key
		{"rekeyed", true, testAlias, snap, "", testAlias},      // the request's
		{"cloned", false, "", "", enc, testKey},                // the source volume's
		{"clone-rekeyed", true, testAlias, "", enc, testAlias}, // the request's
		{"plain-restored", false, "", plainSnap, "", ""},       // none
		{"plain-encrypted", true, testKey, plainSnap, "", testKey},
		{"plain-clone-encrypted", true, testAlias, "", plain, testAlias},
	} {
		arn, err := create(c.target, c.encrypted, c.key, c.snap, c.source)
		if err != nil {
			t.Fatalf("%s: %v", c.target, err)
		}
		if got := f.engineKey(arn); got != c.want {
			t.Errorf("%s: engine asked to seal with %q, want %q", c.target, got, c.want)
		}
		if got := f.describedKey(arn); got != c.want {
			t.Errorf("%s: described KMSKey %q, want %q", c.target, got, c.want)
		}
	}

	// The key leaves the keyring: the snapshot and the volume sealed with
	// it cannot be restored or cloned here, whatever key the new volume
	// would have.
	f.keys = keySet{testAlias: true}
	f.open(4)
	before := f.volumeCount(gw)
	_, err = create("lost", false, "", snap, "")
	wantError(t, err, CodeInvalidParameters, "The snapshot "+snap+" is encrypted with KMS key "+testKey+", which the gateway does not have.")
	_, err = create("lost-rekeyed", true, testAlias, snap, "")
	wantError(t, err, CodeInvalidParameters, "The snapshot "+snap+" is encrypted with KMS key "+testKey+", which the gateway does not have.")
	_, err = create("lost-clone", false, "", "", enc)
	wantError(t, err, CodeInvalidParameters, "The source volume "+volumeIDOf(enc)+" is encrypted with KMS key "+testKey+", which the gateway does not have.")
	if n := f.volumeCount(gw); n != before {
		t.Fatalf("refused restores changed the volume count from %d to %d", before, n)
	}
}

// TestMovedVolumeKeepsItsKey: DetachVolume leaves the volume's key with
// it, so that the gateway attaching it shows the key; a gateway without
// the key leaves the volume detached.
func TestMovedVolumeKeepsItsKey(t *testing.T) {
	f := newFixture(t)
	f.keys = keySet{testKey: true}
	f.wrapped = &memMover{memEngine: f.engine, heads: map[string]DetachedVolume{}}
	f.open(2)
	ctx := context.Background()
	gw := f.activated()
	arn, _, err := f.svc.CreateCachediSCSIVolume(ctx, CreateCachediSCSIVolumeInput{
		GatewayARN: gw, VolumeSizeInBytes: gib, TargetName: "enc", NetworkInterfaceID: "127.0.0.1",
		KMSEncrypted: true, KMSKey: testKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.DetachVolume(ctx, arn, false); err != nil {
		t.Fatal(err)
	}
	if got := f.describedKey(arn); got != testKey {
		t.Fatalf("detached volume described with KMSKey %q", got)
	}

	f.keys = nil
	f.open(3)
	attach := AttachVolumeInput{GatewayARN: gw, VolumeARN: arn, NetworkInterfaceID: "127.0.0.1"}
	_, _, err = f.svc.AttachVolume(ctx, attach)
	wantError(t, err, CodeInvalidParameters, "The volume "+volumeIDOf(arn)+" is encrypted with KMS key "+testKey+", which the gateway does not have.")
	vols, err := f.svc.DescribeCachediSCSIVolumes(ctx, []string{arn})
	if err != nil || len(vols) != 1 || vols[0].VolumeAttachmentStatus != catalog.VolumeDetached {
		t.Fatalf("after a refused attach: %+v %v", vols, err)
	}

	f.keys = keySet{testKey: true}
	f.open(4)
	if _, _, err := f.svc.AttachVolume(ctx, attach); err != nil {
		t.Fatal(err)
	}
	if got := f.describedKey(arn); got != testKey {
		t.Fatalf("attached volume described with KMSKey %q", got)
	}
}
