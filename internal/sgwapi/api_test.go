package sgwapi_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	sgwtypes "github.com/aws/aws-sdk-go-v2/service/storagegateway/types"
	"github.com/aws/smithy-go"

	"github.com/volgw/volgw/internal/awsproto"
	"github.com/volgw/volgw/internal/blob/fs"
	"github.com/volgw/volgw/internal/catalog"
	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/ec2api"
	"github.com/volgw/volgw/internal/iscsi"
	"github.com/volgw/volgw/internal/scsi"
	"github.com/volgw/volgw/internal/seal"
	"github.com/volgw/volgw/internal/sgwapi"
	"github.com/volgw/volgw/internal/volume"
)

const (
	region    = "us-east-1"
	account   = "111122223333"
	accessKey = "AKIDVOLGWTEST0000001"
	secretKey = "volgw-test-secret-key-0000000000000000000"
)

// iscsiExporter is control.TargetExporter over the real iSCSI target and
// the real engine's volumes: what main wires, built here from the same
// parts so that the API's answers can be checked against the wire.
type iscsiExporter struct {
	srv    *iscsi.Server
	engine *volume.Engine

	mu       sync.Mutex // guards exported
	exported map[string]bool
}

func (x *iscsiExporter) Export(ctx context.Context, spec control.ExportSpec) error {
	creds := make([]iscsi.CHAPCredential, 0, len(spec.CHAP))
	for _, c := range spec.CHAP {
		creds = append(creds, iscsi.CHAPCredential(c))
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.exported[spec.IQN] {
		return x.srv.SetCHAP(spec.IQN, creds)
	}
	vol, err := x.engine.Volume(spec.VolumeID)
	if err != nil {
		return err
	}
	dev, err := scsi.NewDevice(vol, scsi.DeviceOptions{SerialNumber: spec.VolumeID})
	if err != nil {
		return err
	}
	err = x.srv.AddTarget(iscsi.TargetConfig{
		IQN: spec.IQN, LUNs: scsi.NewLUNTable(map[uint64]scsi.LogicalUnit{spec.LUN: dev}), CHAP: creds,
	})
	if err != nil {
		return err
	}
	x.exported[spec.IQN] = true
	return nil
}

func (x *iscsiExporter) Unexport(ctx context.Context, iqn string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.exported, iqn)
	if err := x.srv.RemoveTarget(iqn); err != nil && !errors.Is(err, iscsi.ErrTargetNotFound) {
		return err
	}
	return nil
}

// Initiators asks the iSCSI server for the sessions of a target when it can
// list them; until it can, none are reported (ListVolumeInitiators answers
// an empty list rather than an invented one).
func (x *iscsiExporter) Initiators(iqn string) []string {
	if l, ok := any(x.srv).(interface{ Initiators(iqn string) []string }); ok {
		return l.Initiators(iqn)
	}
	return nil
}

type stack struct {
	svc       *control.Service
	endpoint  string
	iscsiAddr *net.TCPAddr
	sgw       *storagegateway.Client
	ec2       *ec2.Client
}

// newStack runs the API over real parts: the catalog, the block engine on
// a file object store, the iSCSI target, awsproto's SigV4 server.
func newStack(t *testing.T) *stack { return newStackOn(t, filepath.Join(t.TempDir(), "store")) }

// newStackOn runs a gateway with its own data dir on the object store in
// storeDir, which other stacks may share.
func newStackOn(t *testing.T, storeDir string) *stack { return newStackWithKeys(t, storeDir, nil) }

// newStackWithKeys is newStackOn for a gateway that has the encryption
// keys keys (nil: none): its engine seals with them and its control plane
// accepts their names.
func newStackWithKeys(t *testing.T, storeDir string, keys *seal.Keyring) *stack {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	cat, err := catalog.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	store, err := fs.New(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := volume.Open(ctx, volume.Config{Dir: filepath.Join(dir, "engine"), Store: store, Logger: log, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := iscsi.NewServer(iscsi.Config{Logger: log})
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ctx, ln) }()
	t.Cleanup(func() { srv.Close(); cancel(); <-served })
	addr := ln.Addr().(*net.TCPAddr)

	cfg := control.Config{
		Catalog: cat, Engine: engine, Exporter: &iscsiExporter{srv: srv, engine: engine, exported: map[string]bool{}},
		Logger: log, Region: region, Account: account, ISCSIAddress: addr.IP.String(), ISCSIPort: addr.Port,
		DiskDir: filepath.Join(dir, "disks"), CacheDiskSize: 1 << 30, UploadBufferDiskSize: 1 << 30,
	}
	if keys != nil {
		cfg.Keys = keys
	}
	svc, err := control.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	model, err := sgwapi.LoadModel()
	if err != nil {
		t.Fatal(err)
	}
	h, err := awsproto.NewServer(awsproto.ServerConfig{
		Region: region, Credentials: awsproto.StaticCredentials{accessKey: secretKey},
		Storage: sgwapi.New(svc), StorageModel: model, EC2: ec2api.New(svc), Activation: svc, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)

	creds := credentials.NewStaticCredentialsProvider(accessKey, secretKey, "")
	return &stack{
		svc:       svc,
		endpoint:  hs.URL,
		iscsiAddr: addr,
		sgw: storagegateway.New(storagegateway.Options{
			Region: region, BaseEndpoint: aws.String(hs.URL), Credentials: creds, RetryMaxAttempts: 1,
		}),
		ec2: ec2.New(ec2.Options{Region: region, BaseEndpoint: aws.String(hs.URL), Credentials: creds, RetryMaxAttempts: 1}),
	}
}

func (s *stack) activationKey(t *testing.T) string {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(s.endpoint + "/?activationRegion=" + region + "&gatewayType=CACHED")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("activation GET: %d %q %v", resp.StatusCode, resp.Header.Get("Location"), err)
	}
	return loc.Query().Get("activationKey")
}

// gatewayError returns the Storage Gateway errorCode of an SDK error.
func gatewayError(t *testing.T, err error) (string, string) {
	t.Helper()
	var e *sgwtypes.InvalidGatewayRequestException
	if !errors.As(err, &e) || e.Error_ == nil {
		t.Fatalf("error %v is not an InvalidGatewayRequestException with an error code", err)
	}
	return string(e.Error_.ErrorCode), aws.ToString(e.Message)
}

// inquiry runs libiscsi's iscsi-inq against LUN 0 of a target, as user
// (CHAP name and secret) when given.
func (s *stack) inquiry(iqn, user, secret string) (string, error) {
	auth := ""
	if user != "" {
		auth = url.PathEscape(user) + "%" + url.PathEscape(secret) + "@"
	}
	u := "iscsi://" + auth + s.iscsiAddr.IP.String() + ":" + strconv.Itoa(s.iscsiAddr.Port) + "/" + iqn + "/0"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "iscsi-inq", u).CombinedOutput()
	return string(out), err
}

func TestCachedVolumeGatewayOverSignedHTTP(t *testing.T) {
	if _, err := exec.LookPath("iscsi-inq"); err != nil {
		t.Fatalf("iscsi-inq (libiscsi-bin) is needed: run scripts/install-test-deps.sh: %v", err)
	}
	s := newStack(t)
	ctx := context.Background()

	// Activation, as on an appliance.
	key := s.activationKey(t)
	act, err := s.sgw.ActivateGateway(ctx, &storagegateway.ActivateGatewayInput{
		ActivationKey: aws.String(key), GatewayName: aws.String("gw"), GatewayTimezone: aws.String("GMT"),
		GatewayRegion: aws.String(region), GatewayType: aws.String("CACHED"),
	})
	if err != nil {
		t.Fatal(err)
	}
	gw := aws.ToString(act.GatewayARN)
	if !regexp.MustCompile(`^arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-[0-9A-F]{8}$`).MatchString(gw) {
		t.Fatalf("GatewayARN %q", gw)
	}
	info, err := s.sgw.DescribeGatewayInformation(ctx, &storagegateway.DescribeGatewayInformationInput{GatewayARN: aws.String(gw)})
	if err != nil || len(info.GatewayNetworkInterfaces) != 1 || aws.ToString(info.GatewayState) != "STATE_RUNNING" {
		t.Fatalf("DescribeGatewayInformation: %+v %v", info, err)
	}
	nic := aws.ToString(info.GatewayNetworkInterfaces[0].Ipv4Address)
	if nic != s.iscsiAddr.IP.String() {
		t.Fatalf("network interface %q, iSCSI listens on %s", nic, s.iscsiAddr)
	}

	// Disks.
	disks, err := s.sgw.ListLocalDisks(ctx, &storagegateway.ListLocalDisksInput{GatewayARN: aws.String(gw)})
	if err != nil || len(disks.Disks) != 2 {
		t.Fatalf("ListLocalDisks: %+v %v", disks, err)
	}
	_, err = s.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{
		GatewayARN: aws.String(gw), VolumeSizeInBytes: 1 << 30, TargetName: aws.String("early"),
		NetworkInterfaceId: aws.String(nic), ClientToken: aws.String("tok-early"),
	})
	if code, _ := gatewayError(t, err); code != "InvalidParameters" {
		t.Fatalf("volume before cache: %s", code)
	}
	if _, err := s.sgw.AddCache(ctx, &storagegateway.AddCacheInput{GatewayARN: aws.String(gw), DiskIds: []string{"cache0"}}); err != nil {
		t.Fatal(err)
	}
	_, err = s.sgw.AddUploadBuffer(ctx, &storagegateway.AddUploadBufferInput{GatewayARN: aws.String(gw), DiskIds: []string{"cache0"}})
	if code, msg := gatewayError(t, err); code != "DiskAlreadyAllocated" || msg != "The specified disk is already allocated." {
		t.Fatalf("AddUploadBuffer(cache0): %s %q", code, msg)
	}
	_, err = s.sgw.AddUploadBuffer(ctx, &storagegateway.AddUploadBufferInput{GatewayARN: aws.String(gw), DiskIds: []string{"nope"}})
	if code, msg := gatewayError(t, err); code != "DiskDoesNotExist" || msg != "The specified disk does not exist." {
		t.Fatalf("AddUploadBuffer(nope): %s %q", code, msg)
	}
	if _, err := s.sgw.AddUploadBuffer(ctx, &storagegateway.AddUploadBufferInput{GatewayARN: aws.String(gw), DiskIds: []string{"buffer0"}}); err != nil {
		t.Fatal(err)
	}
	cache, err := s.sgw.DescribeCache(ctx, &storagegateway.DescribeCacheInput{GatewayARN: aws.String(gw)})
	if err != nil || cache.CacheAllocatedInBytes != 1<<30 || len(cache.DiskIds) != 1 || cache.DiskIds[0] != "cache0" {
		t.Fatalf("DescribeCache: %+v %v", cache, err)
	}

	// A volume, exported on the real target.
	create := &storagegateway.CreateCachediSCSIVolumeInput{
		GatewayARN: aws.String(gw), VolumeSizeInBytes: 1 << 30, TargetName: aws.String("data"),
		NetworkInterfaceId: aws.String(nic), ClientToken: aws.String("tok-1"),
		Tags: []sgwtypes.Tag{{Key: aws.String("owner"), Value: aws.String("test")}},
	}
	vol, err := s.sgw.CreateCachediSCSIVolume(ctx, create)
	if err != nil {
		t.Fatal(err)
	}
	volARN, targetARN := aws.ToString(vol.VolumeARN), aws.ToString(vol.TargetARN)
	iqn := "iqn.1997-05.com.amazon:data"
	if !regexp.MustCompile(`^`+regexp.QuoteMeta(gw)+`/volume/vol-[0-9A-F]{17}$`).MatchString(volARN) || targetARN != gw+"/target/"+iqn {
		t.Fatalf("create: %q %q", volARN, targetARN)
	}
	again, err := s.sgw.CreateCachediSCSIVolume(ctx, create)
	if err != nil || aws.ToString(again.VolumeARN) != volARN {
		t.Fatalf("retry with the same ClientToken: %+v %v", again, err)
	}
	create.ClientToken = aws.String("tok-2")
	_, err = s.sgw.CreateCachediSCSIVolume(ctx, create)
	if code, msg := gatewayError(t, err); code != "TargetAlreadyExists" || msg != "The specified target already exists." {
		t.Fatalf("same TargetName: %s %q", code, msg)
	}
	desc, err := s.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: []string{volARN}})
	if err != nil || len(desc.CachediSCSIVolumes) != 1 {
		t.Fatalf("DescribeCachediSCSIVolumes: %+v %v", desc, err)
	}
	attrs := desc.CachediSCSIVolumes[0].VolumeiSCSIAttributes
	if aws.ToString(attrs.TargetARN) != targetARN || int(attrs.NetworkInterfacePort) != s.iscsiAddr.Port ||
		aws.ToInt32(attrs.LunNumber) != 0 || attrs.ChapEnabled || desc.CachediSCSIVolumes[0].CreatedDate == nil {
		t.Fatalf("VolumeiSCSIAttributes: %+v", attrs)
	}
	// The port and LUN the API reports are where the volume really is.
	out, err := s.inquiry(iqn, "", "")
	if err != nil || !strings.Contains(out, "Amazon") {
		t.Fatalf("iscsi-inq on the reported target: %v\n%s", err, out)
	}

	// CHAP set through the API is enforced on the wire.
	const initiator, secret = "iqn.2026-11.test:initiator", "initiator-secr-1"
	if _, err := s.sgw.UpdateChapCredentials(ctx, &storagegateway.UpdateChapCredentialsInput{
		TargetARN: aws.String(targetARN), InitiatorName: aws.String(initiator), SecretToAuthenticateInitiator: aws.String(secret),
	}); err != nil {
		t.Fatal(err)
	}
	if out, err := s.inquiry(iqn, "", ""); err == nil {
		t.Fatalf("login without CHAP succeeded after UpdateChapCredentials:\n%s", out)
	}
	if out, err := s.inquiry(iqn, initiator, "wrong-secret-00"); err == nil {
		t.Fatalf("login with a wrong secret succeeded:\n%s", out)
	}
	if out, err := s.inquiry(iqn, initiator, secret); err != nil || !strings.Contains(out, "Amazon") {
		t.Fatalf("login with the CHAP secret: %v\n%s", err, out)
	}
	desc, _ = s.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: []string{volARN}})
	if !desc.CachediSCSIVolumes[0].VolumeiSCSIAttributes.ChapEnabled {
		t.Fatal("ChapEnabled false with a credential")
	}
	if _, err := s.sgw.DeleteChapCredentials(ctx, &storagegateway.DeleteChapCredentialsInput{
		TargetARN: aws.String(targetARN), InitiatorName: aws.String(initiator),
	}); err != nil {
		t.Fatal(err)
	}
	if out, err := s.inquiry(iqn, "", ""); err != nil {
		t.Fatalf("login after DeleteChapCredentials: %v\n%s", err, out)
	}

	// The seed operations.
	rps, err := s.sgw.ListVolumeRecoveryPoints(ctx, &storagegateway.ListVolumeRecoveryPointsInput{GatewayARN: aws.String(gw)})
	if err != nil || aws.ToString(rps.GatewayARN) != gw || len(rps.VolumeRecoveryPointInfos) != 1 {
		t.Fatalf("ListVolumeRecoveryPoints: %+v %v", rps, err)
	}
	rp := rps.VolumeRecoveryPointInfos[0]
	rpTime := aws.ToString(rp.VolumeRecoveryPointTime)
	if aws.ToString(rp.VolumeARN) != volARN || rp.VolumeSizeInBytes != 1<<30 ||
		!regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(rpTime) {
		t.Fatalf("recovery point: %+v", rp)
	}
	snap, err := s.sgw.CreateSnapshotFromVolumeRecoveryPoint(ctx, &storagegateway.CreateSnapshotFromVolumeRecoveryPointInput{
		VolumeARN: aws.String(volARN), SnapshotDescription: aws.String("snapshot description"),
		Tags: []sgwtypes.Tag{{Key: aws.String("env"), Value: aws.String("test")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	snapID := aws.ToString(snap.SnapshotId)
	// The snapshot holds the recovery point current when it was taken: the
	// one listed above or, the volume being clean, a later one.
	if !regexp.MustCompile(`^snap-[0-9a-f]{17}$`).MatchString(snapID) || aws.ToString(snap.VolumeARN) != volARN ||
		aws.ToString(snap.VolumeRecoveryPointTime) < rpTime {
		t.Fatalf("CreateSnapshotFromVolumeRecoveryPoint: %s %s %s (recovery point %s)", snapID, aws.ToString(snap.VolumeARN),
			aws.ToString(snap.VolumeRecoveryPointTime), rpTime)
	}
	forced, err := s.sgw.CreateSnapshot(ctx, &storagegateway.CreateSnapshotInput{VolumeARN: aws.String(volARN), SnapshotDescription: aws.String("forced")})
	if err != nil || aws.ToString(forced.SnapshotId) == snapID {
		t.Fatalf("CreateSnapshot: %+v %v", forced, err)
	}

	// EC2 sees both, in its own form.
	volID := strings.ToLower(volARN[strings.LastIndex(volARN, "/")+1:])
	ds, err := s.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{
		OwnerIds: []string{"self"},
		Filters: []ec2types.Filter{
			{Name: aws.String("volume-id"), Values: []string{volID}},
			{Name: aws.String("tag:env"), Values: []string{"te?t"}},
		},
	})
	if err != nil || len(ds.Snapshots) != 1 {
		t.Fatalf("DescribeSnapshots(filters): %+v %v", ds, err)
	}
	got := ds.Snapshots[0]
	if aws.ToString(got.SnapshotId) != snapID || aws.ToString(got.VolumeId) != volID || got.State != ec2types.SnapshotStateCompleted ||
		aws.ToString(got.Progress) != "100%" || aws.ToInt32(got.VolumeSize) != 1 || aws.ToString(got.OwnerId) != account ||
		aws.ToString(got.Description) != "snapshot description" || len(got.Tags) != 1 || aws.ToBool(got.Encrypted) {
		t.Fatalf("snapshot as EC2 shows it: %+v", got)
	}
	// Tags on the snapshot through Storage Gateway's tag operations.
	snapARN := "arn:aws:ec2:" + region + "::snapshot/" + snapID
	if _, err := s.sgw.AddTagsToResource(ctx, &storagegateway.AddTagsToResourceInput{
		ResourceARN: aws.String(snapARN), Tags: []sgwtypes.Tag{{Key: aws.String("more"), Value: aws.String("1")}},
	}); err != nil {
		t.Fatal(err)
	}
	tags, err := s.sgw.ListTagsForResource(ctx, &storagegateway.ListTagsForResourceInput{ResourceARN: aws.String(snapARN)})
	if err != nil || len(tags.Tags) != 2 {
		t.Fatalf("snapshot tags: %+v %v", tags, err)
	}

	if _, err := s.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snapID)}); err != nil {
		t.Fatal(err)
	}
	_, err = s.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snapID}})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidSnapshot.NotFound" ||
		apiErr.ErrorMessage() != "The snapshot '"+snapID+"' does not exist." {
		t.Fatalf("describe deleted snapshot: %v", err)
	}
	_, err = s.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String("snap-xyz")})
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidParameterValue" {
		t.Fatalf("delete malformed snapshot id: %v", err)
	}
	_, err = s.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{MaxResults: aws.Int32(4)})
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidParameterValue" ||
		apiErr.ErrorMessage() != "Value ( 4 ) for parameter maxResults is invalid. Expecting a value greater than 5." {
		t.Fatalf("MaxResults 4: %v", err)
	}

	// Shut down: the target leaves the wire, data operations are refused.
	if _, err := s.sgw.ShutdownGateway(ctx, &storagegateway.ShutdownGatewayInput{GatewayARN: aws.String(gw)}); err != nil {
		t.Fatal(err)
	}
	if out, err := s.inquiry(iqn, "", ""); err == nil {
		t.Fatalf("target still reachable after ShutdownGateway:\n%s", out)
	}
	_, err = s.sgw.CreateSnapshot(ctx, &storagegateway.CreateSnapshotInput{VolumeARN: aws.String(volARN), SnapshotDescription: aws.String("x")})
	if code, msg := gatewayError(t, err); code != "GatewayNotConnected" || msg != "The specified gateway is not connected." {
		t.Fatalf("snapshot while shut down: %s %q", code, msg)
	}
	if _, err := s.sgw.StartGateway(ctx, &storagegateway.StartGatewayInput{GatewayARN: aws.String(gw)}); err != nil {
		t.Fatal(err)
	}
	if out, err := s.inquiry(iqn, "", ""); err != nil {
		t.Fatalf("target after StartGateway: %v\n%s", err, out)
	}

	// Unknown resources.
	_, err = s.sgw.ListVolumeRecoveryPoints(ctx, &storagegateway.ListVolumeRecoveryPointsInput{
		GatewayARN: aws.String("arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-00000000")})
	if code, msg := gatewayError(t, err); code != "GatewayNotFound" || msg != "The specified gateway was not found." {
		t.Fatalf("unknown gateway: %s %q", code, msg)
	}
	_, err = s.sgw.DeleteVolume(ctx, &storagegateway.DeleteVolumeInput{VolumeARN: aws.String(gw + "/volume/vol-0000000000000000A")})
	if code, msg := gatewayError(t, err); code != "VolumeNotFound" || msg != "The specified volume was not found." {
		t.Fatalf("unknown volume: %s %q", code, msg)
	}

	// Delete the volume: gone from the API and from the wire.
	if _, err := s.sgw.DeleteVolume(ctx, &storagegateway.DeleteVolumeInput{VolumeARN: aws.String(volARN)}); err != nil {
		t.Fatal(err)
	}
	lv, err := s.sgw.ListVolumes(ctx, &storagegateway.ListVolumesInput{GatewayARN: aws.String(gw)})
	if err != nil || len(lv.VolumeInfos) != 0 {
		t.Fatalf("ListVolumes after delete: %+v %v", lv, err)
	}
	if out, err := s.inquiry(iqn, "", ""); err == nil {
		t.Fatalf("deleted volume's target still reachable:\n%s", out)
	}
	// Its snapshot outlives it, as on AWS.
	ds, err = s.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{aws.ToString(forced.SnapshotId)}})
	if err != nil || len(ds.Snapshots) != 1 {
		t.Fatalf("snapshot of a deleted volume: %+v %v", ds, err)
	}
}
