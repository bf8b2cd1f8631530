package ebsapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/volgw/volgw/internal/awsproto"
	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/sgwapi"
	"github.com/volgw/volgw/internal/volume"
)

// noStorage answers every Storage Gateway call with an error: the
// benchmark's server serves only the EBS routes.
type noStorage struct{}

func (noStorage) Invoke(context.Context, string, []byte) (any, error) {
	return nil, errors.New("not served by this benchmark")
}

// BenchmarkEBSGetSnapshotBlock: reading every block of a 64 MiB snapshot
// (128 blocks) through GetSnapshotBlock — the Go SDK's EBS client, 8
// requests at once, against the API server on loopback, which reads the
// record, root and page, fetches the block and checks its SHA-256 — vs
// plain Gets of the same block objects from the same store, 8 at once.
// (and the same Gets with the SHA-256 check a reader of raw objects must
// make). Rounds alternate and the medians are reported, in MB/s, for the
// file store and versitygw.
func BenchmarkEBSGetSnapshotBlock(b *testing.B) {
	for name, newStore := range map[string]func(testing.TB) blob.Store{"fs": blobtest.NewFS, "versitygw": blobtest.NewS3} {
		b.Run(name, func(b *testing.B) { benchGetSnapshotBlock(b, newStore(b)) })
	}
}

func benchGetSnapshotBlock(b *testing.B, store blob.Store) {
	const (
		blocks  = 128
		readers = 8
		rounds  = 5
	)
	ctx := context.Background()
	e, err := volume.Open(ctx, volume.Config{Dir: filepath.Join(b.TempDir(), "engine"), Store: store, CutInterval: -1,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	dir := b.TempDir()
	for _, d := range []control.Disk{
		{ID: "cache0", Path: filepath.Join(dir, "cache0.img"), SizeBytes: 256 << 20, Use: control.DiskUseCache},
		{ID: "buf0", Path: filepath.Join(dir, "buffer0.img"), SizeBytes: 256 << 20, Use: control.DiskUseUploadBuffer},
	} {
		if err := e.AddDisk(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
	if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-BENCH", SizeBytes: 1 << 30}); err != nil {
		b.Fatal(err)
	}
	v, err := e.Volume("vol-BENCH")
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, blocks*BlockSize)
	rand.Read(data)
	if err := v.WriteAt(ctx, data, 0); err != nil {
		b.Fatal(err)
	}
	if _, err := e.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-0123456789abcdef0", VolumeID: "vol-BENCH"}); err != nil {
		b.Fatal(err)
	}
	if err := e.Cut(ctx, "vol-BENCH"); err != nil {
		b.Fatal(err)
	}
	model, err := sgwapi.LoadModel()
	if err != nil {
		b.Fatal(err)
	}
	srv, err := awsproto.NewServer(awsproto.ServerConfig{Region: "us-east-1", Credentials: awsproto.StaticCredentials{"AKIDBENCH": "secret"},
		Storage: noStorage{}, StorageModel: model, REST: New(Config{Snapshots: e})})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	api := ebs.New(ebs.Options{Region: "us-east-1", BaseEndpoint: aws.String(hs.URL),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDBENCH", SecretAccessKey: "secret"}, nil
		})})
	list, err := api.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String("snap-0123456789abcdef0")})
	if err != nil || len(list.Blocks) != blocks {
		b.Fatalf("ListSnapshotBlocks: %d blocks, %v", len(list.Blocks), err)
	}
	tree, err := e.OpenSnapshotTree(ctx, "snap-0123456789abcdef0")
	if err != nil {
		b.Fatal(err)
	}
	refs, _, err := tree.Blocks(ctx, 0, blocks)
	if err != nil {
		b.Fatal(err)
	}
	// each runs fn(i) for every block from readers goroutines and returns MB/s.
	each := func(fn func(i int) error) float64 {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, readers)
		next := make(chan int)
		for range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					if err := fn(i); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		for i := range blocks {
			next <- i
		}
		close(next)
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
		return float64(blocks*BlockSize) / time.Since(start).Seconds() / 1e6
	}
	viaAPI := func(i int) error {
		blk := list.Blocks[i]
		out, err := api.GetSnapshotBlock(ctx, &ebs.GetSnapshotBlockInput{SnapshotId: aws.String("snap-0123456789abcdef0"), BlockIndex: blk.BlockIndex, BlockToken: blk.BlockToken})
		if err != nil {
			return err
		}
		defer out.BlockData.Close()
		n, err := io.Copy(io.Discard, out.BlockData)
		if err != nil || n != BlockSize {
			return fmt.Errorf("block %d: %d bytes, %v", i, n, err)
		}
		return nil
	}
	plain := func(i int) error {
		h := fmt.Sprintf("%x", refs[i].Hash)
		got, err := store.Get(ctx, "blocks/"+h[:2]+"/"+h)
		if err != nil || len(got) != BlockSize {
			return fmt.Errorf("block %d: %d bytes, %v", i, len(got), err)
		}
		return nil
	}
	// verified is plain with the check a reader of raw objects must make
	// (and the API makes): the bytes hash to their name.
	verified := func(i int) error {
		h := fmt.Sprintf("%x", refs[i].Hash)
		got, err := store.Get(ctx, "blocks/"+h[:2]+"/"+h)
		if err != nil || sha256.Sum256(got) != refs[i].Hash {
			return fmt.Errorf("block %d: %d bytes, %v", i, len(got), err)
		}
		return nil
	}
	var apiMBs, plainMBs, verifiedMBs []float64
	for range b.N {
		for range rounds {
			apiMBs = append(apiMBs, each(viaAPI))
			plainMBs = append(plainMBs, each(plain))
			verifiedMBs = append(verifiedMBs, each(verified))
		}
	}
	median := func(xs []float64) float64 { slices.Sort(xs); return xs[len(xs)/2] }
	a, p := median(apiMBs), median(plainMBs)
	b.ReportMetric(a, "api_MB/s")
	b.ReportMetric(p, "plain_MB/s")
	b.ReportMetric(a/p, "api/plain")
	vm := median(verifiedMBs)
	b.ReportMetric(vm, "plain+sha256_MB/s")
	b.ReportMetric(a/vm, "api/plain+sha256")
}
