package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	ebstypes "github.com/aws/aws-sdk-go-v2/service/ebs/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
)

// ebsClientFor is the Go SDK's EBS client for s, with the gateway's
// credentials.
func ebsClientFor(s *testServer) *ebs.Client {
	return newEBSClient(s.endpoint(), "us-east-1", aws.Credentials{AccessKeyID: e2eKeyID, SecretAccessKey: e2eSecret})
}

// snapshotOf snapshots the volume and waits for it to complete.
func snapshotOf(t *testing.T, ctx context.Context, c sdkClients, arn, description string) string {
	t.Helper()
	snap, err := c.sgw.CreateSnapshot(ctx, &storagegateway.CreateSnapshotInput{VolumeARN: aws.String(arn), SnapshotDescription: aws.String(description)})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshotCompleted(t, ctx, c, aws.ToString(snap.SnapshotId))
	return aws.ToString(snap.SnapshotId)
}

// listAllBlocks pages through ListSnapshotBlocks with pages of perPage.
func listAllBlocks(t *testing.T, ctx context.Context, api *ebs.Client, id string, perPage int32) (blocks []ebstypes.Block, pages int) {
	t.Helper()
	p := ebs.NewListSnapshotBlocksPaginator(api, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String(id), MaxResults: aws.Int32(perPage)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListSnapshotBlocks %s: %v", id, err)
		}
		if aws.ToInt32(out.BlockSize) != 524288 || aws.ToInt64(out.VolumeSize) != 1 || out.ExpiryTime == nil || !out.ExpiryTime.After(time.Now()) {
			t.Errorf("ListSnapshotBlocks %s: BlockSize %d, VolumeSize %d, ExpiryTime %v", id, aws.ToInt32(out.BlockSize), aws.ToInt64(out.VolumeSize), out.ExpiryTime)
		}
		blocks = append(blocks, out.Blocks...)
		pages++
	}
	return blocks, pages
}

func indexes[T any](items []T, index func(T) int32) []int32 {
	out := make([]int32, len(items))
	for i, it := range items {
		out[i] = index(it)
	}
	return out
}

func blockIndex(b ebstypes.Block) int32               { return aws.ToInt32(b.BlockIndex) }
func changedBlockIndex(b ebstypes.ChangedBlock) int32 { return aws.ToInt32(b.BlockIndex) }

func span(from, to int32) []int32 {
	var out []int32
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// wantEBSError checks err is the EBS exception typ with reason and HTTP
// status, as the SDK parsed it.
func wantEBSError(t *testing.T, what string, err error, status int, typ, reason string) {
	t.Helper()
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != status {
		t.Errorf("%s: %v; want HTTP %d", what, err, status)
		return
	}
	var got string
	var vErr *ebstypes.ValidationException
	var nErr *ebstypes.ResourceNotFoundException
	switch {
	case errors.As(err, &vErr) && typ == "ValidationException":
		got = string(vErr.Reason)
	case errors.As(err, &nErr) && typ == "ResourceNotFoundException":
		got = string(nErr.Reason)
	default:
		t.Errorf("%s: %v (%T); want %s", what, err, re.Err, typ)
		return
	}
	if got != reason {
		t.Errorf("%s: reason %q; want %q (%v)", what, got, reason, err)
	}
}

// TestEBSDirectAPIsRead: a snapshot of data written over iSCSI read
// through the Go SDK's EBS client: its blocks listed (in pages), each read
// with the checksum EBS sends matching its bytes; ListChangedBlocks
// between it and a later snapshot names exactly the blocks written in
// between; and the errors EBS sends for an unknown snapshot, a token of
// another block, an index past the volume, a bad page token.
func TestEBSDirectAPIsRead(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	arn := createVolumes(t, ctx, c, g, "ebs-read")[0]
	lun := volumeLUNURL(t, ctx, c, arn)

	// Blocks 0..127 random, block 200 a pattern.
	data := writeRandomOverISCSI(t, lun, 64<<20)
	if out, err := runTool(t, os.Environ(), 2*time.Minute, "qemu-io", "-f", "raw", "-c", "write -P 0x5a 100M 512K", lun); err != nil {
		t.Fatalf("qemu-io: %v\n%s", err, out)
	}
	block200 := bytes.Repeat([]byte{0x5a}, 524288)
	first := snapshotOf(t, ctx, c, arn, "first")

	api := ebsClientFor(s)
	blocks, pages := listAllBlocks(t, ctx, api, first, 100)
	if want := append(span(0, 128), 200); !slices.Equal(indexes(blocks, blockIndex), want) || pages != 2 {
		t.Fatalf("ListSnapshotBlocks %s in pages of 100: %d pages, blocks %v; want 2 pages, %v", first, pages, indexes(blocks, blockIndex), want)
	}
	for _, b := range blocks {
		i := aws.ToInt32(b.BlockIndex)
		want := block200
		if i < 128 {
			want = data[int(i)*524288 : int(i+1)*524288]
		}
		out, err := api.GetSnapshotBlock(ctx, &ebs.GetSnapshotBlockInput{SnapshotId: aws.String(first), BlockIndex: b.BlockIndex, BlockToken: b.BlockToken})
		if err != nil {
			t.Fatalf("GetSnapshotBlock %d: %v", i, err)
		}
		got, err := io.ReadAll(out.BlockData)
		out.BlockData.Close()
		sum := sha256.Sum256(got)
		if err != nil || !bytes.Equal(got, want) || aws.ToInt32(out.DataLength) != 524288 ||
			aws.ToString(out.Checksum) != base64.StdEncoding.EncodeToString(sum[:]) || out.ChecksumAlgorithm != ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256 {
			t.Fatalf("GetSnapshotBlock %d: %d bytes (equal %v), DataLength %d, Checksum %q %s, err %v", i, len(got), bytes.Equal(got, want),
				aws.ToInt32(out.DataLength), aws.ToString(out.Checksum), out.ChecksumAlgorithm, err)
		}
	}
	// StartingBlockIndex: from block 120 on.
	from, err := api.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String(first), StartingBlockIndex: aws.Int32(120)})
	if err != nil || !slices.Equal(indexes(from.Blocks, blockIndex), append(span(120, 128), 200)) || from.NextToken != nil {
		t.Errorf("ListSnapshotBlocks from 120: %v %v", indexes(from.Blocks, blockIndex), err)
	}

	// Block 3 and block 300 change; block 5 is written with what it held.
	for _, cmd := range []string{"write -P 0x11 1536K 512K", "write -P 0x22 150M 512K"} {
		if out, err := runTool(t, os.Environ(), 2*time.Minute, "qemu-io", "-f", "raw", "-c", cmd, lun); err != nil {
			t.Fatalf("qemu-io: %v\n%s", err, out)
		}
	}
	second := snapshotOf(t, ctx, c, arn, "second")
	changed, err := api.ListChangedBlocks(ctx, &ebs.ListChangedBlocksInput{FirstSnapshotId: aws.String(first), SecondSnapshotId: aws.String(second)})
	if err != nil {
		t.Fatal(err)
	}
	if got := indexes(changed.ChangedBlocks, changedBlockIndex); !slices.Equal(got, []int32{3, 300}) {
		t.Fatalf("ListChangedBlocks %s → %s: %v; want [3 300]", first, second, got)
	}
	if b := changed.ChangedBlocks[0]; b.FirstBlockToken == nil || b.SecondBlockToken == nil {
		t.Errorf("block 3 is in both snapshots: tokens %v %v", b.FirstBlockToken, b.SecondBlockToken)
	}
	if b := changed.ChangedBlocks[1]; b.FirstBlockToken != nil || b.SecondBlockToken == nil {
		t.Errorf("block 300 is in the second only: tokens %v %v", b.FirstBlockToken, b.SecondBlockToken)
	}
	// Each side's token reads that side's block.
	for _, side := range []struct {
		snap  string
		token *string
		want  []byte
	}{{first, changed.ChangedBlocks[0].FirstBlockToken, data[3*524288 : 4*524288]}, {second, changed.ChangedBlocks[0].SecondBlockToken, bytes.Repeat([]byte{0x11}, 524288)}} {
		out, err := api.GetSnapshotBlock(ctx, &ebs.GetSnapshotBlockInput{SnapshotId: aws.String(side.snap), BlockIndex: aws.Int32(3), BlockToken: side.token})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(out.BlockData)
		out.BlockData.Close()
		if !bytes.Equal(got, side.want) {
			t.Errorf("block 3 of %s through ListChangedBlocks' token: wrong bytes", side.snap)
		}
	}
	// Without a first snapshot: every block of the second, in pages.
	var all []int32
	p := ebs.NewListChangedBlocksPaginator(api, &ebs.ListChangedBlocksInput{SecondSnapshotId: aws.String(second), MaxResults: aws.Int32(100)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, indexes(out.ChangedBlocks, changedBlockIndex)...)
	}
	if want := append(span(0, 128), 200, 300); !slices.Equal(all, want) {
		t.Errorf("ListChangedBlocks of %s alone: %v; want %v", second, all, want)
	}

	// Errors.
	_, err = api.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String("snap-0123456789abcdef0")})
	wantEBSError(t, "ListSnapshotBlocks of an unknown snapshot", err, 404, "ResourceNotFoundException", "SNAPSHOT_NOT_FOUND")
	_, err = api.ListChangedBlocks(ctx, &ebs.ListChangedBlocksInput{FirstSnapshotId: aws.String("snap-0123456789abcdef0"), SecondSnapshotId: aws.String(second)})
	wantEBSError(t, "ListChangedBlocks from an unknown snapshot", err, 404, "ResourceNotFoundException", "SNAPSHOT_NOT_FOUND")
	_, err = api.GetSnapshotBlock(ctx, &ebs.GetSnapshotBlockInput{SnapshotId: aws.String(first), BlockIndex: aws.Int32(2), BlockToken: blocks[1].BlockToken})
	wantEBSError(t, "GetSnapshotBlock with block 1's token for block 2", err, 400, "ValidationException", "INVALID_BLOCK_TOKEN")
	_, err = api.GetSnapshotBlock(ctx, &ebs.GetSnapshotBlockInput{SnapshotId: aws.String(second), BlockIndex: aws.Int32(3), BlockToken: changed.ChangedBlocks[0].FirstBlockToken})
	wantEBSError(t, "GetSnapshotBlock of the second with the first's token", err, 400, "ValidationException", "INVALID_BLOCK_TOKEN")
	_, err = api.GetSnapshotBlock(ctx, &ebs.GetSnapshotBlockInput{SnapshotId: aws.String(first), BlockIndex: aws.Int32(2), BlockToken: aws.String("bm90IGEgdG9rZW4=")})
	wantEBSError(t, "GetSnapshotBlock with a malformed token", err, 400, "ValidationException", "INVALID_BLOCK_TOKEN")
	_, err = api.GetSnapshotBlock(ctx, &ebs.GetSnapshotBlockInput{SnapshotId: aws.String(first), BlockIndex: aws.Int32(2048), BlockToken: blocks[0].BlockToken})
	wantEBSError(t, "GetSnapshotBlock past the volume's end", err, 400, "ValidationException", "INVALID_BLOCK")
	_, err = api.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String(first), NextToken: aws.String("AAAAAAAAAGQAAAAAAAAAAA==")})
	wantEBSError(t, "ListSnapshotBlocks with a page token not its own", err, 400, "ValidationException", "INVALID_PAGE_TOKEN")
}

// TestEBSBoto3: the same reads through boto3's EBS client
// (scripts/e2e-ebs-boto3.py), checksums checked by Python against the
// bytes it got, and an import through StartSnapshot, PutSnapshotBlock
// and CompleteSnapshot with the errors EBS sends; then the imports as EC2
// DescribeSnapshots shows them (VolumeId vol-ffffffff, pending until
// completed).
func TestEBSBoto3(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	arn := createVolumes(t, ctx, c, g, "ebs-boto3")[0]
	lun := volumeLUNURL(t, ctx, c, arn)
	data := writeRandomOverISCSI(t, lun, 64<<20)
	first := snapshotOf(t, ctx, c, arn, "first")
	if out, err := runTool(t, os.Environ(), 2*time.Minute, "qemu-io", "-f", "raw", "-c", "write -P 0x11 1536K 512K", lun); err != nil {
		t.Fatalf("qemu-io: %v\n%s", err, out)
	}
	second := snapshotOf(t, ctx, c, arn, "second")

	out, err := runTool(t, scriptEnv(s), 2*time.Minute, "/usr/bin/python3", filepath.Join(repoRoot(t), "scripts", "e2e-ebs-boto3.py"), first, second)
	if err != nil {
		t.Fatalf("e2e-ebs-boto3.py: %v\n%s", err, out)
	}
	type apiErr struct {
		Code, Message, Reason string
		Status                int
	}
	var got struct {
		VolumeSize, BlockSize, Pages int
		Blocks                       []int32
		BadBlocks                    []int32
		SHA256                       map[string]string
		Changed                      []int32
		UnknownSnapshot, BadToken    *apiErr
		BadIndex, BadPageToken       *apiErr
		Start                        map[string]any
		StartAgain                   string
		TokenConflict                *apiErr
		Put                          map[string]bool
		BadChecksum, BeyondVolume    *apiErr
		WrongCount, PutAfterComplete *apiErr
		Complete                     string
		ImportChanged                []int32
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("boto3's report %q: %v", out, err)
	}
	if got.VolumeSize != 1 || got.BlockSize != 524288 || got.Pages != 2 || !slices.Equal(got.Blocks, span(0, 128)) || len(got.BadBlocks) != 0 {
		t.Errorf("boto3 ListSnapshotBlocks/GetSnapshotBlock: size %d GiB, block %d, %d pages, blocks %v, checksums not matching %v",
			got.VolumeSize, got.BlockSize, got.Pages, got.Blocks, got.BadBlocks)
	}
	for i := range 128 {
		sum := sha256.Sum256(data[i*524288 : (i+1)*524288])
		if got.SHA256[strconv.Itoa(i)] != base64.StdEncoding.EncodeToString(sum[:]) {
			t.Fatalf("boto3 read block %d with checksum %q: not what was written over iSCSI", i, got.SHA256[strconv.Itoa(i)])
		}
	}
	if !slices.Equal(got.Changed, []int32{3}) {
		t.Errorf("boto3 ListChangedBlocks: %v; want [3]", got.Changed)
	}
	for _, e := range []struct {
		what         string
		got          *apiErr
		status       int
		code, reason string
	}{
		{"unknown snapshot", got.UnknownSnapshot, 404, "ResourceNotFoundException", "SNAPSHOT_NOT_FOUND"},
		{"another block's token", got.BadToken, 400, "ValidationException", "INVALID_BLOCK_TOKEN"},
		{"index past the volume", got.BadIndex, 400, "ValidationException", "INVALID_BLOCK"},
		{"bad page token", got.BadPageToken, 400, "ValidationException", "INVALID_PAGE_TOKEN"},
		{"client token reused", got.TokenConflict, 409, "ConflictException", ""},
		{"wrong checksum", got.BadChecksum, 400, "ValidationException", "INVALID_PARAMETER_VALUE"},
		{"put past the volume", got.BeyondVolume, 400, "ValidationException", "INVALID_BLOCK"},
		{"wrong ChangedBlocksCount", got.WrongCount, 400, "ValidationException", "INVALID_PARAMETER_VALUE"},
		{"put into a completed snapshot", got.PutAfterComplete, 400, "ValidationException", "INVALID_SNAPSHOT_ID"},
	} {
		if e.got == nil || e.got.Status != e.status || e.got.Code != e.code || e.got.Reason != e.reason || e.got.Message == "" {
			t.Errorf("boto3, %s: %+v; want %d %s %s with a message", e.what, e.got, e.status, e.code, e.reason)
		}
	}
	imported, _ := got.Start["SnapshotId"].(string)
	if got.Start["Status"] != "pending" || got.Start["VolumeSize"] != 1.0 || got.Start["BlockSize"] != 524288.0 || got.Start["ParentSnapshotId"] != first ||
		got.Start["OwnerId"] == nil || got.StartAgain != imported {
		t.Errorf("boto3 StartSnapshot: %v; again with its client token: %s", got.Start, got.StartAgain)
	}
	if !got.Put["1"] || !got.Put["7"] || got.Complete != "completed" || !slices.Equal(got.ImportChanged, []int32{1, 7}) {
		t.Errorf("boto3 import: puts %v, CompleteSnapshot %q, changed from its parent %v; want [1 7]", got.Put, got.Complete, got.ImportChanged)
	}
	ds, err := c.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{imported}})
	if err != nil || len(ds.Snapshots) != 1 {
		t.Fatalf("DescribeSnapshots %s: %v", imported, err)
	}
	if sn := ds.Snapshots[0]; sn.State != "completed" || aws.ToString(sn.VolumeId) != "vol-ffffffff" || aws.ToString(sn.Description) != "boto3 import" {
		t.Errorf("the boto3 import in DescribeSnapshots: %s %s %q", sn.State, aws.ToString(sn.VolumeId), aws.ToString(sn.Description))
	}

	// A started import is pending in DescribeSnapshots, with the progress
	// its last PutSnapshotBlock gave.
	api := ebsClientFor(s)
	started, err := api.StartSnapshot(ctx, &ebs.StartSnapshotInput{VolumeSize: aws.Int64(2)})
	if err != nil {
		t.Fatal(err)
	}
	block := bytes.Repeat([]byte{7}, 524288)
	sum := sha256.Sum256(block)
	if _, err := api.PutSnapshotBlock(ctx, &ebs.PutSnapshotBlockInput{SnapshotId: started.SnapshotId, BlockIndex: aws.Int32(4000), BlockData: bytes.NewReader(block),
		DataLength: aws.Int32(524288), Checksum: aws.String(base64.StdEncoding.EncodeToString(sum[:])), ChecksumAlgorithm: ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256,
		Progress: aws.Int32(40)}); err != nil {
		t.Fatal(err)
	}
	ds, err = c.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{aws.ToString(started.SnapshotId)}})
	if err != nil || len(ds.Snapshots) != 1 {
		t.Fatalf("DescribeSnapshots %s: %v", aws.ToString(started.SnapshotId), err)
	}
	if sn := ds.Snapshots[0]; sn.State != "pending" || aws.ToString(sn.VolumeId) != "vol-ffffffff" || aws.ToInt32(sn.VolumeSize) != 2 || aws.ToString(sn.Progress) != "40%" {
		t.Errorf("a started import in DescribeSnapshots: %s %s %d GiB progress %q", sn.State, aws.ToString(sn.VolumeId), aws.ToInt32(sn.VolumeSize), aws.ToString(sn.Progress))
	}
	_, err = api.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: started.SnapshotId})
	wantEBSError(t, "ListSnapshotBlocks of a pending snapshot", err, 400, "ValidationException", "INVALID_SNAPSHOT_ID")
	if _, err := api.CompleteSnapshot(ctx, &ebs.CompleteSnapshotInput{SnapshotId: started.SnapshotId, ChangedBlocksCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	blocks, _ := listAllBlocks2GiB(t, ctx, api, aws.ToString(started.SnapshotId))
	if !slices.Equal(indexes(blocks, blockIndex), []int32{4000}) {
		t.Errorf("the completed import's blocks: %v; want [4000]", indexes(blocks, blockIndex))
	}
}

func listAllBlocks2GiB(t *testing.T, ctx context.Context, api *ebs.Client, id string) ([]ebstypes.Block, error) {
	t.Helper()
	out, err := api.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt64(out.VolumeSize) != 2 {
		t.Errorf("VolumeSize %d; want 2", aws.ToInt64(out.VolumeSize))
	}
	return out.Blocks, nil
}
