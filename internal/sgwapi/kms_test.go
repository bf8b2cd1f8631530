package sgwapi_test

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	sgwtypes "github.com/aws/aws-sdk-go-v2/service/storagegateway/types"
	"github.com/aws/smithy-go"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/seal/sealtest"
)

const (
	kmsKey   = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	kmsAlias = "alias/volumes"
	// unknownKey is well formed but no key of the gateway.
	unknownKey = "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000"
)

// apiError is what a client sees of an error answer: the HTTP status, the
// __type (the SDK's ErrorCode), the message and, for
// InvalidGatewayRequestException, error.errorCode.
type apiError struct {
	status                 int
	typ, message, sgwError string
}

func answerOf(t *testing.T, err error) apiError {
	t.Helper()
	var re *awshttp.ResponseError
	var ae smithy.APIError
	if !errors.As(err, &re) || !errors.As(err, &ae) {
		t.Fatalf("error %v is not an API error answer", err)
	}
	got := apiError{status: re.HTTPStatusCode(), typ: ae.ErrorCode(), message: ae.ErrorMessage()}
	var ig *sgwtypes.InvalidGatewayRequestException
	if errors.As(err, &ig) && ig.Error_ != nil {
		got.sgwError = string(ig.Error_.ErrorCode)
	}
	return got
}

// TestKMSEncryptionOverSignedHTTP drives CreateCachediSCSIVolume's
// KMSEncrypted and KMSKey through the AWS SDK: every refusal with its
// status, type, message and errorCode, then encrypted volumes (new,
// restored with another key) that DescribeCachediSCSIVolumes shows with
// their KMSKey, and the EC2 view of an unencrypted snapshot.
func TestKMSEncryptionOverSignedHTTP(t *testing.T) {
	s := newStackWithKeys(t, filepath.Join(t.TempDir(), "store"), sealtest.New(t, kmsKey, kmsAlias))
	ctx := context.Background()
	gw, nic := s.readyGateway(t, "gw")
	in := func(target string, encrypted *bool, key string) *storagegateway.CreateCachediSCSIVolumeInput {
		c := createInput(gw, nic, target)
		c.ClientToken = aws.String("token-" + target)
		c.KMSEncrypted = encrypted
		if key != "" {
			c.KMSKey = aws.String(key)
		}
		return &c
	}
	invalid := func(message string) apiError {
		return apiError{400, "InvalidGatewayRequestException", message, "InvalidParameters"}
	}
	tooLong := "alias/" + strings.Repeat("k", 2043)
	pattern := `(^arn:(aws(|-cn|-us-gov|-iso[A-Za-z0-9_-]*|-eusc)):kms:([a-zA-Z0-9-]+):([0-9]+):(key|alias)/(\S+)$)|(^alias/(\S+)$)`
	for _, c := range []struct {
		name string
		in   *storagegateway.CreateCachediSCSIVolumeInput
		want apiError
	}{
		{"KMSEncrypted without KMSKey", in("a", aws.Bool(true), ""),
			invalid("KMSEncrypted is set to true, but KMSKey is missing.")},
		{"KMSKey without KMSEncrypted", in("b", nil, kmsKey),
			invalid("KMSKey can only be set when KMSEncrypted is true.")},
		{"KMSKey with KMSEncrypted false", in("c", aws.Bool(false), kmsKey),
			invalid("KMSKey can only be set when KMSEncrypted is true.")},
		{"a key the gateway does not have", in("d", aws.Bool(true), unknownKey),
			invalid("The specified KMSKey " + unknownKey + " was not found: the gateway has no key by that name.")},
		{"not a KMS ARN", in("e", aws.Bool(true), "arn:aws:s3:::bucket/key"),
			apiError{400, "ValidationException", "1 validation error detected: Value 'arn:aws:s3:::bucket/key' at 'kMSKey' failed to satisfy constraint: Member must satisfy regular expression pattern: " + pattern, ""}},
		{"too long", in("f", aws.Bool(true), tooLong),
			apiError{400, "ValidationException", "1 validation error detected: Value '" + tooLong + "' at 'kMSKey' failed to satisfy constraint: Member must have length less than or equal to 2048", ""}},
	} {
		_, err := s.sgw.CreateCachediSCSIVolume(ctx, c.in)
		if got := answerOf(t, err); got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
	if vols, err := s.sgw.ListVolumes(ctx, &storagegateway.ListVolumesInput{GatewayARN: aws.String(gw)}); err != nil || len(vols.VolumeInfos) != 0 {
		t.Fatalf("refused creates left volumes: %+v %v", vols, err)
	}

	enc := s.createVolume(t, *in("enc", aws.Bool(true), kmsKey))
	plain := s.createVolume(t, *in("plain", nil, ""))
	snap, err := s.sgw.CreateSnapshotFromVolumeRecoveryPoint(ctx, &storagegateway.CreateSnapshotFromVolumeRecoveryPointInput{
		VolumeARN: aws.String(plain), SnapshotDescription: aws.String("plain"),
	})
	if err != nil {
		t.Fatal(err)
	}
	rekeyed := in("rekeyed", aws.Bool(true), kmsAlias)
	rekeyed.SnapshotId = snap.SnapshotId
	restored := s.createVolume(t, *rekeyed)
	desc, err := s.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: []string{enc, plain, restored}})
	if err != nil || len(desc.CachediSCSIVolumes) != 3 {
		t.Fatalf("DescribeCachediSCSIVolumes: %+v %v", desc, err)
	}
	want := map[string]*string{enc: aws.String(kmsKey), plain: nil, restored: aws.String(kmsAlias)}
	for _, v := range desc.CachediSCSIVolumes {
		arn := aws.ToString(v.VolumeARN)
		if w := want[arn]; (w == nil) != (v.KMSKey == nil) || aws.ToString(w) != aws.ToString(v.KMSKey) {
			t.Errorf("%s: KMSKey %v, want %v", arn, aws.ToString(v.KMSKey), aws.ToString(w))
		}
	}

	// EC2 shows the unencrypted snapshot as unencrypted, with no key, and
	// the encrypted filter tells it so.
	snaps, err := s.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{aws.ToString(snap.SnapshotId)}})
	if err != nil || len(snaps.Snapshots) != 1 {
		t.Fatalf("DescribeSnapshots: %+v %v", snaps, err)
	}
	if got := snaps.Snapshots[0]; got.Encrypted == nil || *got.Encrypted || got.KmsKeyId != nil {
		t.Fatalf("unencrypted snapshot: Encrypted %v KmsKeyId %v", aws.ToBool(got.Encrypted), aws.ToString(got.KmsKeyId))
	}
	for value, n := range map[string]int{"false": 1, "true": 0} {
		out, err := s.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{Filters: []ec2types.Filter{
			{Name: aws.String("encrypted"), Values: []string{value}},
			{Name: aws.String("description"), Values: []string{"plain"}},
		}})
		if err != nil || len(out.Snapshots) != n {
			t.Errorf("encrypted=%s: %d snapshots, want %d (%v)", value, len(out.Snapshots), n, err)
		}
	}
}

// TestEncryptedVolumeMovesWithItsKey: a volume detached from one gateway
// keeps its key in the store; a gateway without that key refuses to
// attach it (it stays detached), and one with it attaches it and shows the
// key.
func TestEncryptedVolumeMovesWithItsKey(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	keys := sealtest.New(t, kmsKey)
	first := newStackWithKeys(t, store, keys)
	keyless := newStackWithKeys(t, store, nil)
	keyed := newStackWithKeys(t, store, keys)
	ctx := context.Background()
	gw1, nic := first.readyGateway(t, "first")
	in := createInput(gw1, nic, "enc")
	in.KMSEncrypted, in.KMSKey = aws.Bool(true), aws.String(kmsKey)
	arn := first.createVolume(t, in)
	if _, err := first.sgw.DetachVolume(ctx, &storagegateway.DetachVolumeInput{VolumeARN: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	volID := arn[strings.LastIndex(arn, "/")+1:]

	gw2, _ := keyless.readyGateway(t, "keyless")
	_, err := keyless.sgw.AttachVolume(ctx, &storagegateway.AttachVolumeInput{
		GatewayARN: aws.String(gw2), VolumeARN: aws.String(arn), NetworkInterfaceId: aws.String(nic),
	})
	want := apiError{400, "InvalidGatewayRequestException",
		"The volume " + volID + " is encrypted with KMS key " + kmsKey + ", which the gateway does not have.", "InvalidParameters"}
	if got := answerOf(t, err); got != want {
		t.Fatalf("attach without the key:\n got %+v\nwant %+v", got, want)
	}

	gw3, _ := keyed.readyGateway(t, "keyed")
	out, err := keyed.sgw.AttachVolume(ctx, &storagegateway.AttachVolumeInput{
		GatewayARN: aws.String(gw3), VolumeARN: aws.String(arn), NetworkInterfaceId: aws.String(nic),
	})
	if err != nil {
		t.Fatalf("attach with the key: %v", err)
	}
	desc, err := keyed.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: []string{aws.ToString(out.VolumeARN)}})
	if err != nil || len(desc.CachediSCSIVolumes) != 1 || aws.ToString(desc.CachediSCSIVolumes[0].KMSKey) != kmsKey {
		t.Fatalf("attached volume: %+v %v", desc, err)
	}
}

// TestEncryptedSnapshotRestore is the disaster-recovery path with
// encryption, through the AWS SDK and iSCSI (qemu-io): data written to a
// KMS-encrypted volume, a snapshot of it that EC2 shows encrypted with its
// key, the bucket read byte by byte (no block, page, root, description or
// tag in the clear), a restore on a second gateway with the key that keeps
// the key and reads the data, and a third gateway without the key that
// lists the snapshot but cannot restore it.
func TestEncryptedSnapshotRestore(t *testing.T) {
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Fatalf("qemu-io is needed: run scripts/install-test-deps.sh: %v", err)
	}
	ctx := context.Background()
	storeDir := filepath.Join(t.TempDir(), "store")
	keys := sealtest.New(t, kmsKey)
	first := newStackWithKeys(t, storeDir, keys)
	gw, nic := first.readyGateway(t, "first")
	in := createInput(gw, nic, "secret")
	in.KMSEncrypted, in.KMSKey = aws.Bool(true), aws.String(kmsKey)
	vol := first.createVolume(t, in)
	// 0x53 0x45 ("SE") repeated: a pattern easy to look for in the bucket.
	first.qemuIO(t, "secret", "write -P 0x53 0 1M", "write -P 0x45 300M 512k", "flush")
	const description, tagValue = "finance-ledger-before-migration", "cost-centre-4711"
	snap, err := first.sgw.CreateSnapshot(ctx, &storagegateway.CreateSnapshotInput{
		VolumeARN: aws.String(vol), SnapshotDescription: aws.String(description),
		Tags: []sgwtypes.Tag{{Key: aws.String("owner"), Value: aws.String(tagValue)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	snapID := aws.ToString(snap.SnapshotId)
	for i := 0; ; i++ {
		ds, err := first.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snapID}})
		if err != nil || len(ds.Snapshots) != 1 {
			t.Fatalf("DescribeSnapshots: %+v %v", ds, err)
		}
		got := ds.Snapshots[0]
		if got.State == ec2types.SnapshotStateCompleted {
			if !aws.ToBool(got.Encrypted) || aws.ToString(got.KmsKeyId) != kmsKey || aws.ToString(got.Description) != description {
				t.Fatalf("encrypted snapshot in EC2: Encrypted %v KmsKeyId %q Description %q", aws.ToBool(got.Encrypted), aws.ToString(got.KmsKeyId), aws.ToString(got.Description))
			}
			break
		}
		if i == 600 {
			t.Fatalf("snapshot still %s", got.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
	enc, err := first.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{Filters: []ec2types.Filter{{Name: aws.String("encrypted"), Values: []string{"true"}}}})
	if err != nil || len(enc.Snapshots) != 1 {
		t.Fatalf("encrypted=true filter: %+v %v", enc, err)
	}

	// The bucket, byte by byte.
	pattern := func(b byte) []byte { return bytes.Repeat([]byte{b}, 64) }
	files := blobtest.Files(t, storeDir)
	if len(files) == 0 {
		t.Fatal("the store is empty")
	}
	for rel, b := range files {
		for _, secret := range [][]byte{pattern(0x53), pattern(0x45), []byte(description), []byte(tagValue)} {
			if bytes.Contains(b, secret) {
				t.Errorf("%s holds %q in the clear", rel, secret[:min(len(secret), 16)])
			}
		}
		if (strings.HasPrefix(rel, "blocks/") || strings.HasPrefix(rel, "pages/") || strings.Contains(rel, "/roots/")) && !bytes.HasPrefix(b, []byte("VGE1")) {
			t.Errorf("%s is not sealed", rel)
		}
	}

	// A second gateway with the key: the restore keeps the snapshot's key
	// and reads the data.
	second := newStackWithKeys(t, storeDir, keys)
	gw2, nic2 := second.readyGateway(t, "second")
	rin := createInput(gw2, nic2, "restored")
	rin.SnapshotId = aws.String(snapID)
	restored := second.createVolume(t, rin)
	desc, err := second.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: []string{restored}})
	if err != nil || len(desc.CachediSCSIVolumes) != 1 || aws.ToString(desc.CachediSCSIVolumes[0].KMSKey) != kmsKey {
		t.Fatalf("restored volume: %+v %v", desc, err)
	}
	second.qemuIO(t, "restored", "read -P 0x53 0 1M", "read -P 0x45 300M 512k", "read -P 0 1M 1M")

	// A third gateway without the key: the snapshot is listed (encrypted,
	// its key named, its description unreadable), the restore refused.
	third := newStackOn(t, storeDir)
	gw3, nic3 := third.readyGateway(t, "third")
	ds, err := third.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snapID}})
	if err != nil || len(ds.Snapshots) != 1 || !aws.ToBool(ds.Snapshots[0].Encrypted) || aws.ToString(ds.Snapshots[0].KmsKeyId) != kmsKey {
		t.Fatalf("snapshot seen without the key: %+v %v", ds, err)
	}
	tin := createInput(gw3, nic3, "nokey")
	tin.SnapshotId = aws.String(snapID)
	tin.ClientToken = aws.String("token-nokey")
	_, err = third.sgw.CreateCachediSCSIVolume(ctx, &tin)
	want := apiError{400, "InvalidGatewayRequestException",
		"The snapshot " + snapID + " is encrypted with KMS key " + kmsKey + ", which the gateway does not have.", "InvalidParameters"}
	if got := answerOf(t, err); got != want {
		t.Fatalf("restore without the key:\n got %+v\nwant %+v", got, want)
	}
}
