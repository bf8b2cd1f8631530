package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// volgw status: a running gateway at a glance, asked through its API as
// any client would (signed requests; it never opens the data dir's files
// but the credentials file).

// apiClient calls the Storage Gateway JSON API of a running volgw.
type apiClient struct {
	endpoint, region string
	creds            aws.Credentials
	http             *http.Client
}

// call invokes op with in and decodes the answer into out; an API error
// comes back with AWS's type and message.
func (c *apiClient) call(ctx context.Context, op string, in, out any) error {
	return c.callTarget(ctx, "StorageGateway_20130630", op, in, out)
}

// callTarget is call for the service of X-Amz-Target prefix target.
func (c *apiClient) callTarget(ctx context.Context, target, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint+"/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", target+"."+op)
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, c.creds, req, hex.EncodeToString(sum[:]), "storagegateway", c.region, time.Now()); err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		json.Unmarshal(b, &e)
		return fmt.Errorf("%s: %s (HTTP %d): %s", op, e.Type, resp.StatusCode, e.Message)
	}
	return json.Unmarshal(b, out)
}

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
// point and how far behind it is.
func status(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", "http://127.0.0.1:8080", "the API of the running volgw serve")
	dataDir := fs.String("data-dir", "./volgw-data", "where to find the credentials file when VOLGW_ACCESS_KEY_ID / VOLGW_SECRET_ACCESS_KEY are not set")
	region := fs.String("region", "us-east-1", "the region volgw serve was started with")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	c, err := clientCredentials(*dataDir, getenv)
	if err != nil {
		return err
	}
	api := &apiClient{endpoint: strings.TrimSuffix(*endpoint, "/"), region: *region, http: &http.Client{Timeout: 30 * time.Second},
		creds: aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey}}
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
			sizeString(cache.CacheAllocatedInBytes), cache.CacheUsedPercentage, cache.CacheDirtyPercentage,
			sizeString(buffer.UploadBufferUsedInBytes), sizeString(buffer.UploadBufferAllocatedInBytes))
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
				used = sizeString(*v.VolumeUsedInBytes)
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
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.VolumeId, st, sizeString(v.VolumeSizeInBytes), used, at, behind, target)
		}
		tw.Flush()
	}
	return nil
}

// clientCredentials is the API key pair a client of this machine's volgw
// uses: VOLGW_ACCESS_KEY_ID / VOLGW_SECRET_ACCESS_KEY, else the data dir's
// credentials file (never generated here).
func clientCredentials(dataDir string, getenv func(string) string) (apiCredentials, error) {
	if c, ok, err := envCredentials(getenv); ok || err != nil {
		return c, err
	}
	path := filepath.Join(dataDir, credentialsFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return apiCredentials{}, fmt.Errorf("no API credentials: set VOLGW_ACCESS_KEY_ID and VOLGW_SECRET_ACCESS_KEY, or give --data-dir of the gateway (%w)", err)
	}
	c, err := parseCredentials(data)
	if err != nil {
		return apiCredentials{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// sizeString writes a byte count in binary units, as the flags take them.
func sizeString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n), 0
	for v >= unit && u < 5 {
		v /= unit
		u++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[u-1])
}
