package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/volgw/volgw/internal/bytesize"
)

// volgw status: a running gateway at a glance, asked through its API as
// any client would (signed requests; it never opens the data dir's files
// but the credentials file).

type statusGateway struct {
	GatewayARN, GatewayId, GatewayName, GatewayState, GatewayTimezone, SoftwareVersion string
}

type statusVolume struct {
	VolumeARN, VolumeId, VolumeStatus, VolumeAttachmentStatus string
	VolumeSizeInBytes                                         int64
	VolumeUsedInBytes                                         *int64
	VolumeiSCSIAttributes                                     *struct{ TargetARN string }
}

// status prints every gateway of the server at endpoint: its state, cache
// and upload buffer, and for each volume its status, size, use, recovery
// point and how far behind it is; then the object store's size, what of it
// GC will reclaim, and what compression made of the uploads.
func status(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var flags apiFlags
	flags.register(fs)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	api, err := flags.client(getenv)
	if err != nil {
		return err
	}
	var gws struct{ Gateways []struct{ GatewayARN string } }
	if err := api.call(ctx, "ListGateways", struct{}{}, &gws); err != nil {
		return err
	}
	if len(gws.Gateways) == 0 {
		fmt.Fprintln(stdout, "no gateway activated")
		return nil
	}
	now := time.Now()
	for i, g := range gws.Gateways {
		arn := map[string]string{"GatewayARN": g.GatewayARN}
		var info statusGateway
		if err := api.call(ctx, "DescribeGatewayInformation", arn, &info); err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "gateway %s %q: %s, time zone %s, software %s\n", info.GatewayId, info.GatewayName,
			info.GatewayState, info.GatewayTimezone, info.SoftwareVersion)
		if info.GatewayState != "STATE_RUNNING" {
			continue
		}
		var cache struct {
			CacheAllocatedInBytes                     int64
			CacheUsedPercentage, CacheDirtyPercentage float64
		}
		var buffer struct{ UploadBufferUsedInBytes, UploadBufferAllocatedInBytes int64 }
		if err := errors.Join(api.call(ctx, "DescribeCache", arn, &cache), api.call(ctx, "DescribeUploadBuffer", arn, &buffer)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "cache %s, %.1f%% used, %.1f%% dirty; upload buffer %s of %s not yet uploaded\n",
			bytesize.Format(cache.CacheAllocatedInBytes), cache.CacheUsedPercentage, cache.CacheDirtyPercentage,
			bytesize.Format(buffer.UploadBufferUsedInBytes), bytesize.Format(buffer.UploadBufferAllocatedInBytes))
		var list struct{ VolumeInfos []struct{ VolumeARN string } }
		if err := api.call(ctx, "ListVolumes", arn, &list); err != nil {
			return err
		}
		if len(list.VolumeInfos) == 0 {
			fmt.Fprintln(stdout, "no volumes")
			continue
		}
		var rps struct {
			VolumeRecoveryPointInfos []struct{ VolumeARN, VolumeRecoveryPointTime string }
		}
		if err := api.call(ctx, "ListVolumeRecoveryPoints", arn, &rps); err != nil {
			return err
		}
		rp := map[string]string{}
		for _, r := range rps.VolumeRecoveryPointInfos {
			rp[r.VolumeARN] = r.VolumeRecoveryPointTime
		}
		arns := make([]string, 0, len(list.VolumeInfos))
		for _, v := range list.VolumeInfos {
			arns = append(arns, v.VolumeARN)
		}
		var vols struct{ CachediSCSIVolumes []statusVolume }
		if err := api.call(ctx, "DescribeCachediSCSIVolumes", map[string][]string{"VolumeARNs": arns}, &vols); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "VOLUME\tSTATUS\tSIZE\tUSED\tRECOVERY POINT\tBEHIND\tTARGET")
		for _, v := range vols.CachediSCSIVolumes {
			st := v.VolumeStatus
			if v.VolumeAttachmentStatus != "" && v.VolumeAttachmentStatus != "ATTACHED" {
				st += " (" + v.VolumeAttachmentStatus + ")"
			}
			used, target, at, behind := "-", "-", "-", "-"
			if v.VolumeUsedInBytes != nil {
				used = bytesize.Format(*v.VolumeUsedInBytes)
			}
			if a := v.VolumeiSCSIAttributes; a != nil && a.TargetARN != "" {
				target = a.TargetARN[strings.LastIndex(a.TargetARN, "/")+1:]
			}
			if s, ok := rp[v.VolumeARN]; ok {
				at = s
				if t, err := time.Parse("2006-01-02T15:04:05.000Z", s); err == nil {
					behind = now.Sub(t).Round(100 * time.Millisecond).String()
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.VolumeId, st, bytesize.Format(v.VolumeSizeInBytes), used, at, behind, target)
		}
		tw.Flush()
	}
	// The store is the engine's, shared by the server's gateways.
	f, err := readStoreFigures(ctx, api.http, api.endpoint)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, f.line(time.Now()))
	return nil
}
