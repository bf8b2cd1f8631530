package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/big"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/volgw/volgw/internal/bytesize"
)

// volgw recovery-points: the retained recovery points of a volume
// (--recovery-point-retention), listed and snapshotted through the running
// server's recovery-point API (internal/cdpapi) with signed requests, as
// volgw status asks its questions.

// recoveryPointsTarget is the X-Amz-Target prefix of the API.
const recoveryPointsTarget = "VolgwRecoveryPoints_20261124"

func recoveryPoints(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "snapshot") {
		fmt.Fprint(stderr, "usage: volgw recovery-points list|snapshot --volume ARN|vol-… [flags]\n")
		return errUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("recovery-points "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var flags apiFlags
	flags.register(fs)
	volume := fs.String("volume", "", "the volume: its ARN or its ID (vol-…)")
	at := fs.String("at", "", "snapshot: the latest retained point at or before this time: RFC 3339 (2026-11-24T02:30:00Z), or relative to now (-15m, now)")
	seq := fs.Int64("seq", -1, "snapshot: the retained point of this sequence number (as listed)")
	desc := fs.String("description", "", "snapshot: its description (default: names the volume and the point's time)")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	if *volume == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "volgw recovery-points %s: --volume is required, and nothing else\n", sub)
		return errUsage
	}
	var when time.Time
	if sub == "snapshot" {
		if (*at == "") == (*seq < 0) {
			fmt.Fprintln(stderr, "volgw recovery-points snapshot: give --at TIME or --seq N")
			return errUsage
		}
		if *at != "" {
			t, err := parseWhen(*at, time.Now())
			if err != nil {
				fmt.Fprintf(stderr, "volgw recovery-points snapshot: --at %q: %v\n", *at, err)
				return errUsage
			}
			when = t
		}
	}
	api, err := flags.client(getenv)
	if err != nil {
		return err
	}
	arn, err := volumeARN(ctx, api, *volume)
	if err != nil {
		return err
	}
	if sub == "list" {
		var out struct {
			RetainedRecoveryPoints []struct {
				RecoveryPointTime                     json.Number
				Sequence                              uint64
				VolumeSizeInBytes, VolumeUsageInBytes int64
				Current                               bool
			}
		}
		if err := api.callTarget(ctx, recoveryPointsTarget, "ListRetainedRecoveryPoints", map[string]string{"VolumeARN": arn}, &out); err != nil {
			return err
		}
		now := time.Now()
		var table bytes.Buffer
		tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tRECOVERY POINT\tAGE\tSIZE\tUSED\t")
		for _, p := range out.RetainedRecoveryPoints {
			t, err := epochTime(string(p.RecoveryPointTime))
			if err != nil {
				return err
			}
			cur := ""
			if p.Current {
				cur = "current"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", p.Sequence, t.Format(pointLayout), now.Sub(t).Truncate(time.Second),
				bytesize.Format(p.VolumeSizeInBytes), bytesize.Format(p.VolumeUsageInBytes), cur)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, l := range strings.SplitAfter(table.String(), "\n") {
			if _, err := io.WriteString(stdout, strings.TrimRight(l, " \n")+strings.Repeat("\n", strings.Count(l, "\n"))); err != nil {
				return err
			}
		}
		return nil
	}
	in := map[string]any{"VolumeARN": arn}
	if *seq >= 0 {
		in["Sequence"] = *seq
	} else {
		// Exact epoch seconds (a float would round a nanosecond away and
		// could name the point before).
		in["RecoveryPointTime"] = json.Number(epochString(when))
	}
	in["SnapshotDescription"] = *desc
	if *desc == "" {
		in["SnapshotDescription"] = fmt.Sprintf("Recovery point of %s at %s", arn[strings.LastIndex(arn, "/")+1:], *at)
		if *seq >= 0 {
			in["SnapshotDescription"] = fmt.Sprintf("Recovery point of %s, sequence %d", arn[strings.LastIndex(arn, "/")+1:], *seq)
		}
	}
	var out struct {
		SnapshotId, VolumeARN, VolumeRecoveryPointTime string
		Sequence                                       uint64
	}
	if err := api.callTarget(ctx, recoveryPointsTarget, "CreateSnapshotFromRetainedRecoveryPoint", in, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SNAPSHOT\tVOLUME\tSEQ\tRECOVERY POINT")
	fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", out.SnapshotId, out.VolumeARN[strings.LastIndex(out.VolumeARN, "/")+1:], out.Sequence, out.VolumeRecoveryPointTime)
	return tw.Flush()
}

// pointLayout prints a point's time so that giving it back to --at names
// the same point: microseconds, as the API lists them (rounded up).
const pointLayout = "2006-01-02T15:04:05.000000Z07:00"

// parseWhen reads --at: RFC 3339, "now", or a duration relative to now
// ("-15m", "-1h30m"; a positive one is in the future).
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("not RFC 3339 (2026-11-24T02:30:00Z) nor relative (-15m)")
	}
	return now.Add(d), nil
}

// epochString is t as exact epoch seconds.
func epochString(t time.Time) string {
	ns := t.UnixNano()
	return fmt.Sprintf("%d.%09d", ns/1e9, ns%1e9)
}

// epochTime reads epoch seconds exactly.
func epochTime(s string) (time.Time, error) {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return time.Time{}, fmt.Errorf("bad time %q in the answer", s)
	}
	ns := new(big.Rat).Mul(r, big.NewRat(1e9, 1))
	q := new(big.Int).Quo(ns.Num(), ns.Denom())
	return time.Unix(0, q.Int64()).UTC(), nil
}

// volumeARN returns the ARN of the volume named by its ARN or its ID,
// looking the ID up among the server's gateways' volumes.
func volumeARN(ctx context.Context, api *apiClient, v string) (string, error) {
	if strings.HasPrefix(v, "arn:") {
		return v, nil
	}
	var gws struct{ Gateways []struct{ GatewayARN string } }
	if err := api.call(ctx, "ListGateways", struct{}{}, &gws); err != nil {
		return "", err
	}
	for _, g := range gws.Gateways {
		var list struct {
			VolumeInfos []struct{ VolumeARN, VolumeId string }
		}
		if err := api.call(ctx, "ListVolumes", map[string]string{"GatewayARN": g.GatewayARN}, &list); err != nil {
			return "", err
		}
		for _, vi := range list.VolumeInfos {
			if strings.EqualFold(vi.VolumeId, v) {
				return vi.VolumeARN, nil
			}
		}
	}
	return "", fmt.Errorf("no volume %s on the server's gateways", v)
}
