package product

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
)

// The API key pair the benchmarks give volgw (VOLGW_ACCESS_KEY_ID /
// VOLGW_SECRET_ACCESS_KEY, as README documents).
const (
	apiKeyID  = "AKIABENCHBENCHBENCH0"
	apiSecret = "benchbenchbenchbenchbenchbenchbenchbench"
)

// gateway is one `volgw serve` process and, once activated, its gateway
// and volume.
type gateway struct {
	e       *benchEnv
	dataDir string
	flags   []string // besides --data-dir and the listen addresses
	env     []string
	proc    *proc
	sgw     *storagegateway.Client
	api     string
	gwARN   string
	volARN  string
	lun     string // iscsi://portal/iqn/lun
}

var servingRe = regexp.MustCompile(`msg="volgw serving" api=(http://127\.0\.0\.1:\d+)`)

// startGateway runs `volgw serve` on dataDir with flags, on free loopback
// ports, and waits until it serves its API.
func (e *benchEnv) startGateway(ctx context.Context, dataDir string, flags, env []string) (*gateway, error) {
	g := &gateway{e: e, dataDir: dataDir, flags: flags, env: env}
	return g, g.start(ctx)
}

func (g *gateway) start(ctx context.Context) error {
	args := append([]string{g.e.bin, "serve", "--data-dir", g.dataDir,
		"--listen", "127.0.0.1:0", "--iscsi-listen", "127.0.0.1:0"}, g.flags...)
	env := append([]string{"VOLGW_ACCESS_KEY_ID=" + apiKeyID, "VOLGW_SECRET_ACCESS_KEY=" + apiSecret}, g.env...)
	p, err := g.e.start("volgw", env, args...)
	if err != nil {
		return err
	}
	g.proc = p
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if m := servingRe.FindStringSubmatch(p.out.String()); m != nil {
			g.api = m[1]
			break
		}
		select {
		case <-p.exited:
			return fmt.Errorf("volgw serve exited (%v): %s", p.err, p.out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.kill()
			return fmt.Errorf("volgw serve not serving after 2 minutes: %s", p.out.String())
		}
	}
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(apiKeyID, apiSecret, "")}
	g.sgw = storagegateway.NewFromConfig(cfg, func(o *storagegateway.Options) { o.BaseEndpoint = aws.String(g.api) })
	if g.volARN != "" {
		return g.waitVolume(ctx)
	}
	return nil
}

// restart stops volgw gracefully (SIGTERM) and starts it again on the
// same data dir: its cache is cold after a restart (README).
func (g *gateway) restart(ctx context.Context) error {
	if err := g.proc.stop(syscall.SIGTERM, time.Minute); err != nil {
		return err
	}
	return g.start(ctx)
}

// activate does what README's walk-through does: the activation key from
// the appliance page, ActivateGateway, then the cache and upload-buffer
// disks from ListLocalDisks.
func (g *gateway) activate(ctx context.Context) error {
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(g.api + "/?activationRegion=us-east-1&gatewayType=CACHED")
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		return fmt.Errorf("activation page: %d %q %v", resp.StatusCode, resp.Header.Get("Location"), err)
	}
	act, err := g.sgw.ActivateGateway(ctx, &storagegateway.ActivateGatewayInput{
		ActivationKey: aws.String(loc.Query().Get("activationKey")), GatewayName: aws.String("bench"),
		GatewayTimezone: aws.String("GMT"), GatewayRegion: aws.String("us-east-1"), GatewayType: aws.String("CACHED")})
	if err != nil {
		return fmt.Errorf("ActivateGateway: %w", err)
	}
	g.gwARN = aws.ToString(act.GatewayARN)
	disks, err := g.sgw.ListLocalDisks(ctx, &storagegateway.ListLocalDisksInput{GatewayARN: act.GatewayARN})
	if err != nil {
		return fmt.Errorf("ListLocalDisks: %w", err)
	}
	var cache, buffer []string
	for _, d := range disks.Disks {
		id := aws.ToString(d.DiskId)
		switch {
		case strings.HasPrefix(id, "cache"):
			cache = append(cache, id)
		case strings.HasPrefix(id, "buffer"):
			buffer = append(buffer, id)
		}
	}
	if _, err := g.sgw.AddCache(ctx, &storagegateway.AddCacheInput{GatewayARN: act.GatewayARN, DiskIds: cache}); err != nil {
		return fmt.Errorf("AddCache: %w", err)
	}
	if _, err := g.sgw.AddUploadBuffer(ctx, &storagegateway.AddUploadBufferInput{GatewayARN: act.GatewayARN, DiskIds: buffer}); err != nil {
		return fmt.Errorf("AddUploadBuffer: %w", err)
	}
	return nil
}

// createVolume creates the gateway's one cached volume and finds its LUN
// as an initiator would, from DescribeCachediSCSIVolumes.
func (g *gateway) createVolume(ctx context.Context, size int64, name string) error {
	return g.createVolumeFrom(ctx, size, name, "")
}

// createVolumeFrom is createVolume from a snapshot (a restore) when
// snapshotID is set; the new volume becomes the gateway's volume.
func (g *gateway) createVolumeFrom(ctx context.Context, size int64, name, snapshotID string) error {
	info, err := g.sgw.DescribeGatewayInformation(ctx, &storagegateway.DescribeGatewayInformationInput{GatewayARN: aws.String(g.gwARN)})
	if err != nil || len(info.GatewayNetworkInterfaces) == 0 {
		return fmt.Errorf("DescribeGatewayInformation: %+v %w", info, err)
	}
	in := &storagegateway.CreateCachediSCSIVolumeInput{
		GatewayARN: aws.String(g.gwARN), VolumeSizeInBytes: size, TargetName: aws.String(name),
		NetworkInterfaceId: info.GatewayNetworkInterfaces[0].Ipv4Address, ClientToken: aws.String("bench-token-" + name)}
	if snapshotID != "" {
		in.SnapshotId = aws.String(snapshotID)
	}
	vol, err := g.sgw.CreateCachediSCSIVolume(ctx, in)
	if err != nil {
		return fmt.Errorf("CreateCachediSCSIVolume: %w", err)
	}
	g.volARN = aws.ToString(vol.VolumeARN)
	return g.waitVolume(ctx)
}

// waitVolume waits until the volume is AVAILABLE and sets its LUN URL.
func (g *gateway) waitVolume(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return waitFor(ctx, 50*time.Millisecond, func() (bool, error) {
		d, err := g.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: []string{g.volARN}})
		if err != nil || len(d.CachediSCSIVolumes) != 1 {
			return false, fmt.Errorf("DescribeCachediSCSIVolumes: %+v %w", d, err)
		}
		v := d.CachediSCSIVolumes[0]
		if aws.ToString(v.VolumeStatus) != "AVAILABLE" {
			return false, nil
		}
		a := v.VolumeiSCSIAttributes
		target := aws.ToString(a.TargetARN)
		iqn := target[strings.Index(target, "/target/")+len("/target/"):]
		g.lun = "iscsi://" + aws.ToString(a.NetworkInterfaceId) + ":" + strconv.Itoa(int(a.NetworkInterfacePort)) +
			"/" + iqn + "/" + strconv.Itoa(int(aws.ToInt32(a.LunNumber)))
		return true, nil
	})
}

// recoveryPoint is the volume's recovery point as ListVolumeRecoveryPoints
// reports it: every write acknowledged before it is in the object store.
func (g *gateway) recoveryPoint(ctx context.Context) (time.Time, error) {
	out, err := g.sgw.ListVolumeRecoveryPoints(ctx, &storagegateway.ListVolumeRecoveryPointsInput{GatewayARN: aws.String(g.gwARN)})
	if err != nil {
		return time.Time{}, fmt.Errorf("ListVolumeRecoveryPoints: %w", err)
	}
	for _, rp := range out.VolumeRecoveryPointInfos {
		if aws.ToString(rp.VolumeARN) == g.volARN {
			return time.Parse("2006-01-02T15:04:05.000Z", aws.ToString(rp.VolumeRecoveryPointTime))
		}
	}
	return time.Time{}, fmt.Errorf("no recovery point for %s in %+v", g.volARN, out.VolumeRecoveryPointInfos)
}

// waitDurable waits until the recovery point is at or past t: every write
// acknowledged before t is then in the object store. It returns when it
// saw that.
func (g *gateway) waitDurable(ctx context.Context, t time.Time) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var seen time.Time
	err := waitFor(ctx, 20*time.Millisecond, func() (bool, error) {
		rp, err := g.recoveryPoint(ctx)
		seen = time.Now()
		return !rp.Before(t), err
	})
	return seen, err
}
