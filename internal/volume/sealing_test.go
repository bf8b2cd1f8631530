package volume

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/volgw/volgw/internal/blob/blobtest"
	blobfs "github.com/volgw/volgw/internal/blob/fs"
	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/seal/sealtest"
)

const (
	sealMarker      = "PLAINTEXT-MARKER-3f9a"
	sealDescription = "payroll-database-nightly"
	sealTagValue    = "tag-value-7c21"
)

// markedBlock is compressible content that carries the marker throughout.
func markedBlock(seed int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < BlockSize; i++ {
		b.WriteString(sealMarker)
		b.WriteByte(byte('a' + (seed+i)%26))
	}
	return b.Bytes()[:BlockSize]
}

func randomBlock(seed byte) []byte {
	b := make([]byte, BlockSize)
	rand.Read(b)
	b[0] = seed
	return b
}

func fsStoreAt(t *testing.T, dir string) *blobfs.Store {
	t.Helper()
	s, err := blobfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSealedVolume: a volume created with a key stores no plaintext block,
// page, root, description or tag; it reads back after a restart; another
// gateway restores its snapshot only with the key; GC without the key
// deletes nothing.
func TestSealedVolume(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	line := sealtest.Line(t, "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
	arn := strings.Fields(line)[0]
	te := newTestEngine(t, fsStoreAt(t, dir), engineOpts{})
	te.cfg.Keys, te.cfg.Compress = sealtest.Parse(t, line), true
	te.reopen()

	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-sealed", SizeBytes: gib, KMSKey: "arn:aws:kms:us-east-1:123456789012:key/unknown"}); !errors.Is(err, control.ErrKeyUnavailable) {
		t.Fatalf("unknown key: %v, want ErrKeyUnavailable", err)
	}
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-sealed", SizeBytes: gib, KMSKey: arn}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-sealed")
	var want []byte
	for i := range 6 {
		want = append(want, markedBlock(i)...)
	}
	want = append(want, randomBlock(7)...)
	if err := v.WriteAt(ctx, want, 0); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, "vol-sealed"); err != nil {
		t.Fatal(err)
	}
	snap, err := te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-0123456789abcdef0", VolumeID: "vol-sealed",
		Description: sealDescription, Tags: []control.Tag{{Key: "team", Value: sealTagValue}}, FromRecoveryPoint: true})
	if err != nil {
		t.Fatal(err)
	}
	if snap.KMSKey != arn {
		t.Fatalf("snapshot key %q, want %q", snap.KMSKey, arn)
	}

	files := blobtest.Files(t, dir)
	kinds := map[string]int{}
	for name, b := range files {
		for _, secret := range []string{sealMarker, sealDescription, sealTagValue, "team", arn[len(arn)-12:] + `"`} {
			if bytes.Contains(b, []byte(secret)) && !(secret == arn[len(arn)-12:]+`"` && strings.HasPrefix(name, "snapshots/")) {
				t.Errorf("%s holds %q in the clear", name, secret)
			}
		}
		kind := strings.SplitN(name, "/", 2)[0]
		if strings.Contains(name, "/roots/") {
			kind = "roots"
		}
		switch kind {
		case "blocks", "pages", "roots":
			if !bytes.HasPrefix(b, []byte("VGE1")) {
				t.Errorf("%s is not sealed (%q)", name, b[:min(8, len(b))])
			}
			kinds[kind]++
		}
	}
	if kinds["blocks"] != 7 || kinds["pages"] == 0 || kinds["roots"] == 0 {
		t.Fatalf("store holds %v", kinds)
	}
	// The marked blocks compressed before they were sealed.
	var stored int
	for name, b := range files {
		if strings.HasPrefix(name, "blocks/") {
			stored += len(b)
		}
	}
	if stored > 2*BlockSize {
		t.Fatalf("7 blocks (6 compressible) stored in %d bytes", stored)
	}

	te.reopen()
	if got := mustRead(t, te.vol("vol-sealed"), 0, len(want)); !bytes.Equal(got, want) {
		t.Fatal("sealed volume reads back wrong after a restart")
	}

	// A second gateway with the key restores the snapshot and sees its
	// description; one without it lists the snapshot but cannot restore.
	with := newTestEngine(t, fsStoreAt(t, dir), engineOpts{})
	with.cfg.Keys = sealtest.Parse(t, line)
	with.reopen()
	s, err := with.Snapshot(ctx, snap.ID)
	if err != nil || s.Description != sealDescription || len(s.Tags) != 1 || s.Tags[0].Value != sealTagValue {
		t.Fatalf("with the key: %+v %v", s, err)
	}
	if err := with.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-restored", SizeBytes: gib, Source: control.VolumeSource{SnapshotID: snap.ID}}); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, with.vol("vol-restored"), 0, len(want)); !bytes.Equal(got, want) {
		t.Fatal("restored volume reads wrong")
	}

	without := newTestEngine(t, fsStoreAt(t, dir), engineOpts{grace: 1})
	s, err = without.Snapshot(ctx, snap.ID)
	if err != nil || s.KMSKey != arn || s.Description != "" || s.Status != control.SnapshotCompleted {
		t.Fatalf("without the key, the snapshot lists as %+v (%v)", s, err)
	}
	err = without.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-nokey", SizeBytes: gib, Source: control.VolumeSource{SnapshotID: snap.ID}})
	if !errors.Is(err, control.ErrKeyUnavailable) {
		t.Fatalf("restore without the key: %v, want ErrKeyUnavailable", err)
	}
	// Deleting the volume leaves the snapshot; GC on the gateway without
	// the key cannot open its root, so it must not delete anything.
	before := len(blobtest.Files(t, dir))
	if _, err := without.GC(ctx); !errors.Is(err, control.ErrKeyUnavailable) {
		t.Fatalf("GC without the key: %v, want ErrKeyUnavailable", err)
	}
	if after := len(blobtest.Files(t, dir)); after != before {
		t.Fatalf("GC without the key changed the store: %d objects, then %d", before, after)
	}
	// Tags change on a gateway without the key: the sealed part stays.
	if err := without.SetSnapshotTags(ctx, snap.ID, nil); err == nil {
		if s, _ := with.Snapshot(ctx, snap.ID); s.Description != sealDescription {
			t.Fatal("a gateway without the key lost the sealed description")
		}
	}

	// The engine refuses to open a local volume whose key is gone.
	te.cfg.Keys = nil
	te.Engine.Close()
	te.Engine = nil
	if _, err := Open(ctx, te.cfg); err == nil || !strings.Contains(err.Error(), arn) {
		t.Fatalf("Open without the volume's key: %v", err)
	}
}

// TestCompressedVolume: compression alone stores compressible blocks as
// zstd and incompressible ones as they are, and reads both back.
func TestCompressedVolume(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	te := newTestEngine(t, fsStoreAt(t, dir), engineOpts{})
	te.cfg.Compress = true
	te.reopen()
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-z", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	want := append(markedBlock(1), randomBlock(2)...)
	v := te.vol("vol-z")
	if err := v.WriteAt(ctx, want, 0); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, "vol-z"); err != nil {
		t.Fatal(err)
	}
	var zipped, raw int
	for name, b := range blobtest.Files(t, dir) {
		if !strings.HasPrefix(name, "blocks/") {
			continue
		}
		switch {
		case bytes.HasPrefix(b, []byte("VGZ1")) && len(b) < BlockSize/8:
			zipped++
		case len(b) == BlockSize:
			raw++
		default:
			t.Errorf("%s: %d bytes starting %q", name, len(b), b[:4])
		}
	}
	if zipped != 1 || raw != 1 {
		t.Fatalf("%d compressed and %d raw blocks, want 1 and 1", zipped, raw)
	}
	// The metrics say what compression made of the uploads.
	forms := map[string]float64{}
	for _, m := range gather(t, te.Engine)["volgw_store_uploaded_bytes_total"] {
		forms[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
	}
	if forms["written"] < 2*BlockSize || forms["stored"] >= forms["written"]*0.6 || forms["stored"] < BlockSize {
		t.Fatalf("uploaded bytes %v: want two blocks written, one of them stored compressed", forms)
	}
	// A gateway that does not compress reads them: the format is in the
	// object, not in the configuration.
	other := newTestEngine(t, fsStoreAt(t, dir), engineOpts{})
	if _, err := te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-00000000000000001", VolumeID: "vol-z", FromRecoveryPoint: true}); err != nil {
		t.Fatal(err)
	}
	if err := other.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-r", SizeBytes: gib, Source: control.VolumeSource{SnapshotID: "snap-00000000000000001"}}); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, other.vol("vol-r"), 0, len(want)); !bytes.Equal(got, want) {
		t.Fatal("compressed blocks read back wrong")
	}
}

// TestKeyRotation: a second secret under the volume's key name seals new
// objects; old ones open while the old secret is configured, and only then.
func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l1, l2 := sealtest.Line(t, "vol-key"), sealtest.Line(t, "vol-key")
	l2 = "vol-key " + strings.Fields(l2)[1]
	te := newTestEngine(t, fsStoreAt(t, dir), engineOpts{})
	te.cfg.Keys = sealtest.Parse(t, l1)
	te.reopen()
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-rot", SizeBytes: gib, KMSKey: "vol-key"}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-rot")
	first, second := randomBlock(1), randomBlock(2)
	if err := v.WriteAt(ctx, first, 0); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, "vol-rot"); err != nil {
		t.Fatal(err)
	}
	te.cfg.Keys = sealtest.Parse(t, l1, l2) // rotated: l2 is current
	te.reopen()
	v = te.vol("vol-rot")
	if err := v.WriteAt(ctx, second, BlockSize); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, "vol-rot"); err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for name, b := range blobtest.Files(t, dir) {
		if strings.HasPrefix(name, "blocks/") {
			ids[string(b[4:12])]++
		}
	}
	if len(ids) != 2 {
		t.Fatalf("blocks sealed with %d keys, want 2 (before and after rotation)", len(ids))
	}
	if _, err := te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-0000000000000000a", VolumeID: "vol-rot", FromRecoveryPoint: true}); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		lines []string
		ok    bool
	}{{[]string{l1, l2}, true}, {[]string{l2}, false}} {
		id := fmt.Sprintf("vol-r%d", i)
		o := newTestEngine(t, fsStoreAt(t, dir), engineOpts{})
		o.cfg.Keys = sealtest.Parse(t, c.lines...)
		o.reopen()
		err := o.CreateVolume(ctx, control.VolumeSpec{VolumeID: id, SizeBytes: gib, Source: control.VolumeSource{SnapshotID: "snap-0000000000000000a"}})
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 2*BlockSize)
		err = o.vol(id).ReadAt(ctx, got, 0)
		switch {
		case c.ok && (err != nil || !bytes.Equal(got, append(first, second...))):
			t.Fatalf("with both secrets: %v", err)
		case !c.ok && err == nil:
			t.Fatal("read a block sealed with a secret no longer configured")
		}
	}
}
