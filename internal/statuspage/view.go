package statuspage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/volgw/volgw/internal/control"
)

// Source is the control plane as the page reads it (*control.Service):
// only what the API's Describe and List calls answer from.
type Source interface {
	ListGateways(ctx context.Context, marker string, limit int) ([]control.GatewaySummary, string, error)
	DescribeGatewayInformation(ctx context.Context, gatewayARN string) (control.GatewayInfo, error)
	SoftwareVersion() string
	DescribeCache(ctx context.Context, gatewayARN string) (control.CacheInfo, error)
	DescribeUploadBuffer(ctx context.Context, gatewayARN string) (control.UploadBufferInfo, error)
	ListVolumes(ctx context.Context, gatewayARN, marker string, limit int) (string, []control.VolumeInfo, string, error)
	DescribeCachediSCSIVolumes(ctx context.Context, volumeARNs []string) ([]control.CachedVolume, error)
	ListVolumeRecoveryPoints(ctx context.Context, gatewayARN string) (string, []control.VolumeRecoveryPointInfo, error)
	Snapshots(ctx context.Context) ([]control.Snapshot, error)
}

// View is what the page shows, and what its JSON endpoint answers.
type View struct {
	Time      time.Time  `json:"time"`
	Version   string     `json:"version"`
	Gateways  []Gateway  `json:"gateways"`
	Snapshots []Snapshot `json:"snapshots"`
}

// Gateway is one gateway with its disks' use and its volumes.
type Gateway struct {
	ARN, ID, Name, State, Timezone string
	Running                        bool
	// Cache and upload buffer: zero when the gateway is not running.
	CacheBytes                               int64
	CacheUsedPercent, CacheDirtyPercent      float64
	UploadBufferBytes, UploadBufferUsedBytes int64
	UploadBufferUsedPercent                  float64
	Volumes                                  []Volume
}

// Volume is one volume and how far behind its recovery point is.
type Volume struct {
	ARN, ID, Status, Attachment, Target string
	SizeBytes                           int64
	UsedBytes                           *int64
	Progress                            *float64
	// RecoveryPoint is zero when the volume has none (detached).
	RecoveryPoint time.Time
	Lag           time.Duration
	// Lags is the lag over the last hour, oldest first.
	Lags []Sample
}

// Snapshot is one snapshot in the store (any gateway's).
type Snapshot struct {
	ID, VolumeID, Status, Description string
	Progress                          int
	SizeBytes                         int64
	StartTime, RecoveryPointTime      time.Time
}

// collect reads the control plane into a View; history supplies each
// volume's lag over the last hour.
func collect(ctx context.Context, src Source, history *History, now time.Time) (View, error) {
	v := View{Time: now, Version: src.SoftwareVersion()}
	gws, err := listGateways(ctx, src)
	if err != nil {
		return v, err
	}
	for _, g := range gws {
		info, err := src.DescribeGatewayInformation(ctx, g.GatewayARN)
		if err != nil {
			return v, err
		}
		gw := Gateway{ARN: g.GatewayARN, ID: info.GatewayID, Name: info.GatewayName, State: info.GatewayState, Timezone: info.GatewayTimezone}
		if gw.Running = info.GatewayState == "STATE_RUNNING"; !gw.Running {
			v.Gateways = append(v.Gateways, gw)
			continue
		}
		if gw.Volumes, err = volumes(ctx, src, g.GatewayARN, now); err != nil {
			return v, err
		}
		for i := range gw.Volumes {
			gw.Volumes[i].Lags = history.Lags(gw.Volumes[i].ARN)
		}
		cache, err := src.DescribeCache(ctx, g.GatewayARN)
		if err != nil {
			return v, err
		}
		gw.CacheBytes = cache.CacheAllocatedInBytes
		if cache.Stats != nil {
			gw.CacheUsedPercent, gw.CacheDirtyPercent = cache.Stats.UsedPercent, cache.Stats.DirtyPercent
		}
		buf, err := src.DescribeUploadBuffer(ctx, g.GatewayARN)
		if err != nil {
			return v, err
		}
		gw.UploadBufferBytes = buf.AllocatedInBytes
		if buf.UsedInBytes != nil {
			gw.UploadBufferUsedBytes = *buf.UsedInBytes
			if buf.AllocatedInBytes > 0 {
				gw.UploadBufferUsedPercent = 100 * float64(*buf.UsedInBytes) / float64(buf.AllocatedInBytes)
			}
		}
		v.Gateways = append(v.Gateways, gw)
	}
	snaps, err := src.Snapshots(ctx)
	if err != nil {
		return v, err
	}
	// Newest first: the one just taken is the one looked for.
	for i := len(snaps) - 1; i >= 0; i-- {
		s := snaps[i]
		v.Snapshots = append(v.Snapshots, Snapshot{ID: s.ID, VolumeID: s.VolumeID, Status: string(s.Status), Description: s.Description,
			Progress: s.Progress, SizeBytes: s.VolumeSizeBytes, StartTime: s.StartTime, RecoveryPointTime: s.RecoveryPointTime})
	}
	return v, nil
}

func listGateways(ctx context.Context, src Source) ([]control.GatewaySummary, error) {
	var all []control.GatewaySummary
	marker := ""
	for {
		gws, next, err := src.ListGateways(ctx, marker, 100)
		if err != nil {
			return nil, err
		}
		all = append(all, gws...)
		if next == "" {
			return all, nil
		}
		marker = next
	}
}

// volumes lists a running gateway's volumes with their status and lag.
func volumes(ctx context.Context, src Source, gatewayARN string, now time.Time) ([]Volume, error) {
	var arns []string
	marker := ""
	for {
		_, infos, next, err := src.ListVolumes(ctx, gatewayARN, marker, 100)
		if err != nil {
			return nil, err
		}
		for _, i := range infos {
			arns = append(arns, i.VolumeARN)
		}
		if next == "" {
			break
		}
		marker = next
	}
	if len(arns) == 0 {
		return nil, nil
	}
	points, err := recoveryPoints(ctx, src, gatewayARN)
	if err != nil {
		return nil, err
	}
	var out []Volume
	// DescribeCachediSCSIVolumes takes at most 100 ARNs a call, as AWS's.
	for len(arns) > 0 {
		n := min(len(arns), 100)
		vols, err := src.DescribeCachediSCSIVolumes(ctx, arns[:n])
		if err != nil {
			return nil, err
		}
		arns = arns[n:]
		for _, cv := range vols {
			vol := Volume{ARN: cv.VolumeARN, ID: cv.VolumeID, Status: cv.VolumeStatus, Attachment: cv.VolumeAttachmentStatus,
				Target: cv.ISCSI.TargetARN, SizeBytes: cv.VolumeSizeInBytes, UsedBytes: cv.VolumeUsedInBytes, Progress: cv.VolumeProgress}
			if t, ok := points[cv.VolumeARN]; ok {
				vol.RecoveryPoint, vol.Lag = t, max(now.Sub(t), 0)
			}
			out = append(out, vol)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// recoveryPoints maps each of the gateway's volumes to its recovery point.
func recoveryPoints(ctx context.Context, src Source, gatewayARN string) (map[string]time.Time, error) {
	_, infos, err := src.ListVolumeRecoveryPoints(ctx, gatewayARN)
	if err != nil {
		return nil, err
	}
	points := make(map[string]time.Time, len(infos))
	var errs []error
	for _, i := range infos {
		t, err := time.Parse(control.RecoveryPointTimeLayout, i.VolumeRecoveryPointTime)
		if err != nil {
			errs = append(errs, fmt.Errorf("statuspage: recovery point of %s: %w", i.VolumeARN, err))
			continue
		}
		points[i.VolumeARN] = t
	}
	return points, errors.Join(errs...)
}
