package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	sgwtypes "github.com/aws/aws-sdk-go-v2/service/storagegateway/types"

	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/volume"
)

// bodyRecorder is an SDK HTTP client that keeps the last response body,
// so that a test sees which members the answer really has (the SDK reads
// an absent double as 0).
type bodyRecorder struct {
	mu   sync.Mutex // guards last
	last []byte
}

func (r *bodyRecorder) Do(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.last = body
	r.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// members decodes the last response body as a JSON object.
func (r *bodyRecorder) members(t *testing.T) map[string]any {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var m map[string]any
	if err := json.Unmarshal(r.last, &m); err != nil {
		t.Fatalf("response body %q: %v", r.last, err)
	}
	return m
}

// recordingSGW is a Storage Gateway client whose responses are recorded.
func recordingSGW(endpoint string) (*storagegateway.Client, *bodyRecorder) {
	rec := &bodyRecorder{}
	cfg := aws.Config{Region: "us-east-1", RetryMaxAttempts: 1, HTTPClient: rec,
		Credentials: credentials.NewStaticCredentialsProvider(e2eKeyID, e2eSecret, "")}
	return storagegateway.NewFromConfig(cfg, func(o *storagegateway.Options) { o.BaseEndpoint = aws.String(endpoint) }), rec
}

// describeCacheFigures returns DescribeCache's four percentages and
// DescribeUploadBuffer's used and allocated bytes, failing unless each is
// in the answer as a JSON number under the model's member name.
func describeCacheFigures(t *testing.T, ctx context.Context, endpoint, gatewayARN string) (control.CacheStats, int64, int64) {
	t.Helper()
	sgw, rec := recordingSGW(endpoint)
	present := func(op string, names ...string) {
		t.Helper()
		m := rec.members(t)
		for _, n := range names {
			if _, ok := m[n].(float64); !ok {
				t.Fatalf("%s answer lacks the number %s: %v", op, n, m)
			}
		}
	}
	cache, err := sgw.DescribeCache(ctx, &storagegateway.DescribeCacheInput{GatewayARN: aws.String(gatewayARN)})
	if err != nil {
		t.Fatalf("DescribeCache: %v", err)
	}
	present("DescribeCache", "CacheAllocatedInBytes", "CacheUsedPercentage", "CacheDirtyPercentage", "CacheHitPercentage", "CacheMissPercentage")
	st := control.CacheStats{UsedPercent: cache.CacheUsedPercentage, DirtyPercent: cache.CacheDirtyPercentage,
		HitPercent: cache.CacheHitPercentage, MissPercent: cache.CacheMissPercentage}
	buf, err := sgw.DescribeUploadBuffer(ctx, &storagegateway.DescribeUploadBufferInput{GatewayARN: aws.String(gatewayARN)})
	if err != nil {
		t.Fatalf("DescribeUploadBuffer: %v", err)
	}
	present("DescribeUploadBuffer", "UploadBufferUsedInBytes", "UploadBufferAllocatedInBytes")
	return st, buf.UploadBufferUsedInBytes, buf.UploadBufferAllocatedInBytes
}

// checkCacheFiguresPlausible checks the figures after at least written
// bytes were written to the gateway's volumes and read back: some cache is
// used, no more is dirty than used, reads were counted, and the upload
// buffer holds no more than it has.
func checkCacheFiguresPlausible(t *testing.T, ctx context.Context, endpoint, gatewayARN string, written int64) {
	t.Helper()
	st, used, allocated := describeCacheFigures(t, ctx, endpoint, gatewayARN)
	in := func(x float64) bool { return x >= 0 && x <= 100 }
	if !in(st.UsedPercent) || !in(st.DirtyPercent) || !in(st.HitPercent) || !in(st.MissPercent) ||
		st.UsedPercent == 0 || st.DirtyPercent > st.UsedPercent || st.HitPercent == 0 || st.HitPercent+st.MissPercent != 100 {
		t.Fatalf("DescribeCache figures after writing and reading %d bytes: %+v", written, st)
	}
	if used < 0 || used > allocated {
		t.Fatalf("DescribeUploadBuffer: used %d of %d", used, allocated)
	}
}

// noCutParts are productionParts with an engine that cuts only when asked
// (CutInterval < 0), so that what is dirty stays dirty until the test cuts;
// engine is set once the server has opened it.
func noCutParts(engine **volume.Engine, mu *sync.Mutex) parts {
	return enginePartsWith(engine, mu, func(cfg *volume.Config) { cfg.CutInterval, cfg.GCInterval = -1, 0 })
}

// TestGoSDKCacheFiguresAndEngineErrors follows DescribeCache's and
// DescribeUploadBuffer's figures through the Go SDK as data is written to
// a volume and uploaded by a cut, and checks that restoring a snapshot (or
// cloning a volume) into a smaller volume is the client's mistake:
// InvalidGatewayRequestException InvalidParameters, not an internal error.
func TestGoSDKCacheFiguresAndEngineErrors(t *testing.T) {
	var (
		mu     sync.Mutex
		engine *volume.Engine
	)
	s := startServerParts(t, "", nil, nil, noCutParts(&engine, &mu))
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	mu.Lock()
	e := engine
	mu.Unlock()

	// 2 GiB of cache is 4096 slots of 512 KiB.
	const slots = float64(2 << 30 / volume.BlockSize)
	st, used, allocated := describeCacheFigures(t, ctx, s.endpoint(), g.arn)
	if st != (control.CacheStats{}) || used != 0 || allocated != 1<<30 {
		t.Fatalf("figures of an unused gateway: cache %+v, upload buffer %d of %d", st, used, allocated)
	}

	vol, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn),
		VolumeSizeInBytes: 2 << 30, TargetName: aws.String("figures"), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("figures-1")})
	if err != nil {
		t.Fatalf("CreateCachediSCSIVolume: %v", err)
	}
	volARN := aws.ToString(vol.VolumeARN)
	volID := volARN[strings.LastIndex(volARN, "/")+1:]
	v, err := e.Volume(volID)
	if err != nil {
		t.Fatal(err)
	}

	// 4 MiB written (8 blocks) and read back: 8 dirty slots, reads all hits,
	// the records in the upload buffer.
	const written = 4 << 20
	data := make([]byte, written)
	for i := range data {
		data[i] = byte(i*31 + i>>12)
	}
	if err := v.WriteAt(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, written)
	if err := v.ReadAt(ctx, back, 0); err != nil || string(back) != string(data) {
		t.Fatalf("read back: %v", err)
	}
	st, used, _ = describeCacheFigures(t, ctx, s.endpoint(), g.arn)
	if want := 8 * 100 / slots; st.UsedPercent != want || st.DirtyPercent != want || st.HitPercent != 100 || st.MissPercent != 0 {
		t.Fatalf("after writing and reading 4 MiB: %+v, want used = dirty = %v, 100%% hits", st, want)
	}
	if used < written || used > written+written/64 {
		t.Fatalf("upload buffer used after writing 4 MiB = %d", used)
	}

	// Uploaded: nothing dirty, the upload buffer empty, the blocks still
	// cached (clean).
	if err := e.Cut(ctx, volID); err != nil {
		t.Fatal(err)
	}
	st, used, _ = describeCacheFigures(t, ctx, s.endpoint(), g.arn)
	if st.UsedPercent != 8*100/slots || st.DirtyPercent != 0 || used != 0 {
		t.Fatalf("after the cut: cache %+v, upload buffer used %d; want used %v, dirty 0, buffer 0", st, used, 8*100/slots)
	}

	// A snapshot of the 2 GiB volume cannot be restored into 1 GiB, nor
	// can the volume be cloned into one.
	snap, err := c.sgw.CreateSnapshotFromVolumeRecoveryPoint(ctx, &storagegateway.CreateSnapshotFromVolumeRecoveryPointInput{
		VolumeARN: vol.VolumeARN, SnapshotDescription: aws.String("2 GiB")})
	if err != nil {
		t.Fatalf("CreateSnapshotFromVolumeRecoveryPoint: %v", err)
	}
	const tooSmall = "The volume size must be equal to or larger than the size of the snapshot or volume it is created from."
	_, err = c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn),
		VolumeSizeInBytes: 1 << 30, SnapshotId: snap.SnapshotId, TargetName: aws.String("small-restore"),
		NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("small-restore")})
	wantGatewayError(t, "restore into a volume smaller than the snapshot", err, sgwtypes.ErrorCodeInvalidParameters, tooSmall)
	_, err = c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn),
		VolumeSizeInBytes: 1 << 30, SourceVolumeARN: vol.VolumeARN, TargetName: aws.String("small-clone"),
		NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("small-clone")})
	wantGatewayError(t, "clone into a volume smaller than its source", err, sgwtypes.ErrorCodeInvalidParameters, tooSmall)

	// The same size works, and the restored volume holds the data.
	restored, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn),
		VolumeSizeInBytes: 2 << 30, SnapshotId: snap.SnapshotId, TargetName: aws.String("restore"),
		NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("restore")})
	if err != nil {
		t.Fatalf("restore into a volume of the snapshot's size: %v", err)
	}
	rARN := aws.ToString(restored.VolumeARN)
	rv, err := e.Volume(rARN[strings.LastIndex(rARN, "/")+1:])
	if err != nil {
		t.Fatal(err)
	}
	// The restored volume is RESTORING until the engine has fetched its 8
	// blocks into its cache (a cache entry belongs to one volume: the
	// source's do not serve it); a restore's fetches are not reads, so
	// they count neither as hits nor as misses.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		cond, err := e.VolumeStatus(ctx, rv.ID())
		if err != nil {
			t.Fatal(err)
		}
		if cond.Status == control.VolumeAvailable {
			break
		}
		if cond.Status != control.VolumeRestoring || time.Now().After(deadline) {
			t.Fatalf("restored volume is %s (%s)", cond.Status, cond.Reason)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := rv.ReadAt(ctx, back, 0); err != nil || string(back) != string(data) {
		t.Fatalf("restored volume differs: %v", err)
	}
	st, _, _ = describeCacheFigures(t, ctx, s.endpoint(), g.arn)
	if st.HitPercent != 100 || st.MissPercent != 0 {
		t.Fatalf("after 16 hits: %+v, want 100%% hits", st)
	}
}
