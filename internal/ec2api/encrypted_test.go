package ec2api_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/volgw/volgw/internal/awsproto"
	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/ec2api"
	"github.com/volgw/volgw/internal/sgwapi"
)

// snapshotList is ec2api.Snapshots over a fixed list: the snapshot records
// as an engine that seals them reports them.
type snapshotList []control.Snapshot

func (l snapshotList) Snapshots(context.Context) ([]control.Snapshot, error) { return l, nil }
func (l snapshotList) DeleteSnapshot(context.Context, string) error {
	return errors.New("not in this test")
}
func (l snapshotList) UpdateSnapshotTags(context.Context, []string, func(string, []control.Tag) ([]control.Tag, error)) (string, error) {
	return "", errors.New("not in this test")
}
func (l snapshotList) Account() string { return "111122223333" }

// noStorage is the Storage Gateway side of the endpoint, which this test
// does not use.
type noStorage struct{}

func (noStorage) Invoke(context.Context, string, []byte) (any, error) {
	return nil, errors.New("not in this test")
}

// TestEncryptedSnapshotsOverSignedHTTP: through the AWS SDK, an encrypted
// snapshot is Encrypted with its key as KmsKeyId, an unencrypted one is
// not and has none, and the encrypted filter tells them apart.
func TestEncryptedSnapshotsOverSignedHTTP(t *testing.T) {
	const key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	snaps := snapshotList{
		{ID: "snap-0123456789abcdef0", VolumeID: "vol-0123456789ABCDEF0", VolumeSizeBytes: 1 << 30, StartTime: start,
			Status: control.SnapshotCompleted, Progress: 100, KMSKey: key},
		{ID: "snap-0123456789abcdef1", VolumeID: "vol-0123456789ABCDEF1", VolumeSizeBytes: 1 << 30, StartTime: start,
			Status: control.SnapshotCompleted, Progress: 100},
	}
	model, err := sgwapi.LoadModel()
	if err != nil {
		t.Fatal(err)
	}
	h, err := awsproto.NewServer(awsproto.ServerConfig{
		Region: "us-east-1", Credentials: awsproto.StaticCredentials{"AKIDVOLGWTEST0000001": "secret"},
		Storage: noStorage{}, StorageModel: model, EC2: ec2api.New(snaps),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	defer hs.Close()
	client := ec2.New(ec2.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(hs.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDVOLGWTEST0000001", "secret", ""),
	})
	ctx := context.Background()

	out, err := client.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{})
	if err != nil || len(out.Snapshots) != 2 {
		t.Fatalf("DescribeSnapshots: %+v %v", out, err)
	}
	enc, plain := out.Snapshots[0], out.Snapshots[1]
	if !aws.ToBool(enc.Encrypted) || aws.ToString(enc.KmsKeyId) != key {
		t.Errorf("encrypted snapshot: Encrypted %v KmsKeyId %q", aws.ToBool(enc.Encrypted), aws.ToString(enc.KmsKeyId))
	}
	if plain.Encrypted == nil || *plain.Encrypted || plain.KmsKeyId != nil {
		t.Errorf("unencrypted snapshot: Encrypted %v KmsKeyId %v", plain.Encrypted, plain.KmsKeyId)
	}
	for value, want := range map[string]string{"true": snaps[0].ID, "false": snaps[1].ID} {
		out, err := client.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{
			Filters: []ec2types.Filter{{Name: aws.String("encrypted"), Values: []string{value}}},
		})
		if err != nil || len(out.Snapshots) != 1 || aws.ToString(out.Snapshots[0].SnapshotId) != want {
			t.Errorf("encrypted=%s: %+v %v, want %s", value, out, err, want)
		}
	}
}
