package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
)

// holdSession logs an initiator in to the LUN (an interactive qemu-io
// waiting on its standard input) until the returned function is called.
func holdSession(t *testing.T, ctx context.Context, c sdkClients, volumeARN string) (stop func()) {
	t.Helper()
	cmd := exec.Command("qemu-io", "-f", "raw", volumeLUNURL(t, ctx, c, volumeARN))
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop = func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
	}
	t.Cleanup(stop)
	for range 200 {
		ini, err := c.sgw.ListVolumeInitiators(ctx, &storagegateway.ListVolumeInitiatorsInput{VolumeARN: aws.String(volumeARN)})
		if err == nil && len(ini.Initiators) > 0 {
			return stop
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("qemu-io never logged in")
	return nil
}

// TestAttachDetachVolumeCLIAndBoto3 moves a volume between two gateways on
// one bucket with the AWS CLI and boto3, and checks what each answers,
// valid and not: DetachVolume refuses a volume an initiator is logged in
// to unless ForceDetach (which drops the session); the detached volume is
// listed and described DETACHED, without iSCSI attributes; AttachVolume
// answers VolumeNotFound for a volume the store does not hold, VolumeInUse
// for one attached to a gateway, TargetAlreadyExists, InvalidParameters
// for another network interface, and takes the previous target name when
// none is given; the old gateway then no longer lists it; DeleteVolume of
// a detached volume deletes it for every gateway.
func TestAttachDetachVolumeCLIAndBoto3(t *testing.T) {
	flags, env := sharedS3Store(t)
	ctx := context.Background()
	sa, sb := startServerWith(t, "", flags, env), startServerWith(t, "", flags, env)
	ca, cb := newSDKClients(sa.endpoint(), e2eKeyID, e2eSecret), newSDKClients(sb.endpoint(), e2eKeyID, e2eSecret)
	ga, gb := activateGateway(t, ctx, ca, sa.endpoint()), activateGateway(t, ctx, cb, sb.endpoint())
	arns := createVolumes(t, ctx, ca, ga, "cli-vol", "stays")
	vol, stays := arns[0], arns[1]
	createVolumes(t, ctx, cb, gb, "taken")
	id := volumeID(vol)
	clis := awsCLIs(t)
	cli := clis["v2"]
	if cli == "" {
		cli = clis["v1"]
	}

	stop := holdSession(t, ctx, ca, vol)
	const inUse = "The specified volume is in use: an iSCSI initiator is connected to its target. Disconnect it, or set ForceDetach."
	for name, c := range clis {
		out, ok := runCLI(t, sa, c, "storagegateway", "detach-volume", "--volume-arn", vol)
		wantCLIError(t, name+" detach-volume with an initiator logged in", out, ok, "InvalidGatewayRequestException", inUse)
	}
	got := runBoto3(t, sa, []boto3Call{
		{Name: "busy", Service: "storagegateway", Op: "DetachVolume", Params: map[string]any{"VolumeARN": vol, "ForceDetach": false}},
		{Name: "unknown", Service: "storagegateway", Op: "DetachVolume", Params: map[string]any{"VolumeARN": ga.arn + "/volume/vol-0123456789ABCDEF0"}},
	})
	if g := got["busy"]; g.OK || g.Code != "InvalidGatewayRequestException" || g.ErrorCode != "VolumeInUse" || g.Message != inUse || g.Status != 400 {
		t.Errorf("boto3 DetachVolume with an initiator logged in: %+v", g)
	}
	if g := got["unknown"]; g.OK || g.ErrorCode != "VolumeNotFound" || g.Message != "The specified volume was not found." {
		t.Errorf("boto3 DetachVolume of no volume: %+v", g)
	}
	out, ok := runCLI(t, sa, cli, "storagegateway", "detach-volume", "--volume-arn", vol, "--force-detach")
	if !ok || !strings.Contains(out, `"VolumeARN": "`+vol+`"`) {
		t.Fatalf("detach-volume --force-detach: %s", out)
	}
	stop()
	if ini, err := ca.sgw.ListVolumeInitiators(ctx, &storagegateway.ListVolumeInitiatorsInput{VolumeARN: aws.String(vol)}); err == nil {
		t.Fatalf("initiators of a detached volume: %+v", ini)
	}
	out, ok = runCLI(t, sa, cli, "storagegateway", "list-volumes", "--gateway-arn", ga.arn)
	var lv struct {
		VolumeInfos []struct{ VolumeARN, VolumeAttachmentStatus string }
	}
	if err := json.Unmarshal([]byte(out), &lv); !ok || err != nil || len(lv.VolumeInfos) != 2 {
		t.Fatalf("list-volumes: %s", out)
	}
	for _, v := range lv.VolumeInfos {
		want := map[string]string{vol: "DETACHED", stays: "ATTACHED"}[v.VolumeARN]
		if v.VolumeAttachmentStatus != want {
			t.Errorf("list-volumes: %s is %s, want %s", v.VolumeARN, v.VolumeAttachmentStatus, want)
		}
	}
	out, ok = runCLI(t, sa, cli, "storagegateway", "describe-cached-iscsi-volumes", "--volume-arns", vol)
	if !ok || !strings.Contains(out, `"VolumeAttachmentStatus": "DETACHED"`) || strings.Contains(out, "VolumeiSCSIAttributes") {
		t.Fatalf("describe-cached-iscsi-volumes of a detached volume: %s", out)
	}
	out, ok = runCLI(t, sa, cli, "storagegateway", "create-snapshot", "--volume-arn", vol, "--snapshot-description", "x")
	wantCLIError(t, "create-snapshot of a detached volume", out, ok, "InvalidGatewayRequestException", "The specified volume is not ready: it is DETACHED.")

	// Attaching on B: the errors first.
	attach := func(volumeARN, target, nic string) []string {
		args := []string{"storagegateway", "attach-volume", "--gateway-arn", gb.arn, "--volume-arn", volumeARN, "--network-interface-id", nic}
		if target != "" {
			args = append(args, "--target-name", target)
		}
		return args
	}
	for name, c := range clis {
		out, ok := runCLI(t, sb, c, attach(ga.arn+"/volume/vol-0123456789ABCDEF0", "x", gb.ip)...)
		wantCLIError(t, name+" attach-volume of no volume", out, ok, "InvalidGatewayRequestException", "The specified volume was not found.")
		out, ok = runCLI(t, sb, c, attach(stays, "x", gb.ip)...)
		wantCLIError(t, name+" attach-volume of a volume attached to A", out, ok, "InvalidGatewayRequestException", "The specified volume is in use.")
		out, ok = runCLI(t, sb, c, attach(vol, "taken", gb.ip)...)
		wantCLIError(t, name+" attach-volume to a target name in use", out, ok, "InvalidGatewayRequestException", "The specified target already exists.")
		out, ok = runCLI(t, sb, c, attach(vol, "x", "10.9.9.9")...)
		wantCLIError(t, name+" attach-volume on another interface", out, ok, "InvalidGatewayRequestException",
			"The specified network interface is not a network interface of the gateway.")
	}
	got = runBoto3(t, sb, []boto3Call{
		{Name: "gw", Service: "storagegateway", Op: "AttachVolume", Params: map[string]any{"GatewayARN": ga.arn, "VolumeARN": vol, "NetworkInterfaceId": gb.ip}},
		{Name: "none", Service: "storagegateway", Op: "AttachVolume", Params: map[string]any{"GatewayARN": gb.arn,
			"VolumeARN": ga.arn + "/volume/vol-0123456789ABCDEF0", "NetworkInterfaceId": gb.ip}},
		{Name: "elsewhere", Service: "storagegateway", Op: "AttachVolume", Params: map[string]any{"GatewayARN": gb.arn, "VolumeARN": stays, "NetworkInterfaceId": gb.ip}},
		{Name: "target", Service: "storagegateway", Op: "AttachVolume", Params: map[string]any{"GatewayARN": gb.arn, "VolumeARN": vol,
			"NetworkInterfaceId": gb.ip, "TargetName": "taken"}},
		{Name: "ok", Service: "storagegateway", Op: "AttachVolume", Params: map[string]any{"GatewayARN": gb.arn, "VolumeARN": vol,
			"NetworkInterfaceId": gb.ip, "TargetName": "moved", "DiskId": "unused-by-cached-volumes"}},
		{Name: "again", Service: "storagegateway", Op: "AttachVolume", Params: map[string]any{"GatewayARN": gb.arn, "VolumeARN": vol, "NetworkInterfaceId": gb.ip}},
	})
	if g := got["gw"]; g.OK || g.ErrorCode != "GatewayNotFound" {
		t.Errorf("boto3 AttachVolume to a gateway of another appliance: %+v", g)
	}
	for name, code := range map[string]string{"none": "VolumeNotFound", "elsewhere": "VolumeInUse", "target": "TargetAlreadyExists"} {
		if g := got[name]; g.OK || g.Code != "InvalidGatewayRequestException" || g.ErrorCode != code || g.Status != 400 {
			t.Errorf("boto3 AttachVolume %s: %+v, want errorCode %s", name, g, code)
		}
	}
	var att struct{ VolumeARN, TargetARN string }
	if g := got["ok"]; !g.OK || json.Unmarshal(g.Response, &att) != nil || att.VolumeARN != gb.arn+"/volume/"+id ||
		att.TargetARN != gb.arn+"/target/iqn.1997-05.com.amazon:moved" {
		t.Fatalf("boto3 AttachVolume: %+v %s", g, g.Response)
	}
	if g := got["again"]; g.OK || g.ErrorCode != "VolumeInUse" {
		t.Errorf("boto3 AttachVolume of a volume attached here: %+v", g)
	}
	out, ok = runCLI(t, sa, cli, "storagegateway", "list-volumes")
	if !ok || strings.Contains(out, id) {
		t.Fatalf("A still lists the volume B attached: %s", out)
	}
	out, ok = runCLI(t, sa, cli, "storagegateway", "detach-volume", "--volume-arn", vol)
	wantCLIError(t, "detach-volume on A of the volume B holds", out, ok, "InvalidGatewayRequestException", "The specified volume was not found.")

	// Back to A without a target name: the previous one ("moved").
	out, ok = runCLI(t, sb, cli, "storagegateway", "detach-volume", "--volume-arn", att.VolumeARN)
	if !ok {
		t.Fatalf("detach-volume on B: %s", out)
	}
	out, ok = runCLI(t, sa, cli, "storagegateway", "attach-volume", "--gateway-arn", ga.arn, "--volume-arn", att.VolumeARN, "--network-interface-id", ga.ip)
	if !ok || !strings.Contains(out, `"TargetARN": "`+ga.arn+`/target/iqn.1997-05.com.amazon:moved"`) || !strings.Contains(out, `"VolumeARN": "`+vol+`"`) {
		t.Fatalf("attach-volume back on A with the previous target name: %s", out)
	}
	// Detached and attached again on the same gateway, then detached.
	for _, step := range []func() error{
		func() error {
			_, err := ca.sgw.DetachVolume(ctx, &storagegateway.DetachVolumeInput{VolumeARN: aws.String(vol)})
			return err
		},
		func() error {
			_, err := ca.sgw.AttachVolume(ctx, &storagegateway.AttachVolumeInput{GatewayARN: aws.String(ga.arn), VolumeARN: aws.String(vol),
				NetworkInterfaceId: aws.String(ga.ip), TargetName: aws.String("again")})
			return err
		},
		func() error { _ = volumeLUNURL(t, ctx, ca, vol); return nil },
		func() error {
			_, err := ca.sgw.DetachVolume(ctx, &storagegateway.DetachVolumeInput{VolumeARN: aws.String(vol)})
			return err
		},
	} {
		if err := step(); err != nil {
			t.Fatalf("re-attach on the same gateway: %v", err)
		}
	}
	// DeleteVolume of a detached volume deletes it for every gateway.
	if out, ok := runCLI(t, sa, cli, "storagegateway", "delete-volume", "--volume-arn", vol); !ok {
		t.Fatalf("delete-volume of a detached volume: %s", out)
	}
	out, ok = runCLI(t, sb, cli, attach(vol, "", gb.ip)...)
	wantCLIError(t, "attach-volume of a deleted volume", out, ok, "InvalidGatewayRequestException", "The specified volume was not found.")
}
