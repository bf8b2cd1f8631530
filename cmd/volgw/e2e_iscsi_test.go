package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
)

// TestISCSITargetFollowsTheAPI checks that what the API says about a
// volume's target is what an iSCSI initiator finds at that address:
// CreateCachediSCSIVolume exports it, its LUN serves data, CHAP set
// through UpdateChapCredentials is enforced, DeleteVolume withdraws it.
func TestISCSITargetFollowsTheAPI(t *testing.T) {
	for _, tool := range []string{"iscsi-ls", "iscsi-inq", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: run scripts/install-test-deps.sh", tool)
		}
	}
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	vol, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn),
		VolumeSizeInBytes: 1 << 30, TargetName: aws.String("iscsi-e2e"), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("iscsi-1")})
	if err != nil {
		t.Fatal(err)
	}
	desc, err := c.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: []string{aws.ToString(vol.VolumeARN)}})
	if err != nil {
		t.Fatal(err)
	}
	attrs := desc.CachediSCSIVolumes[0].VolumeiSCSIAttributes
	iqn := aws.ToString(attrs.TargetARN)[strings.Index(aws.ToString(attrs.TargetARN), "/target/")+len("/target/"):]
	portal := aws.ToString(attrs.NetworkInterfaceId) + ":" + strconv.Itoa(int(attrs.NetworkInterfacePort))
	lunURL := "iscsi://" + portal + "/" + iqn + "/" + strconv.Itoa(int(aws.ToInt32(attrs.LunNumber)))
	env := os.Environ()
	tool := func(name string, args ...string) (string, error) {
		return runTool(t, env, time.Minute, name, args...)
	}

	out, err := tool("iscsi-ls", "iscsi://"+portal)
	if err != nil || !strings.Contains(out, iqn) {
		t.Fatalf("iscsi-ls: %v\n%s", err, out)
	}
	out, err = tool("iscsi-inq", lunURL)
	if err != nil || !strings.Contains(out, "Amazon") {
		t.Fatalf("iscsi-inq %s: %v\n%s", lunURL, err, out)
	}

	// 4 MiB of random data written over iSCSI comes back over iSCSI.
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	data := make([]byte, 4<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := tool("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src, lunURL); err != nil {
		t.Fatalf("qemu-img convert to iSCSI: %v\n%s", err, out)
	}
	back := filepath.Join(dir, "back.img")
	if out, err := tool("qemu-img", "dd", "-f", "raw", "-O", "raw", "bs=1M", "count=4", "if="+lunURL, "of="+back); err != nil {
		t.Fatalf("qemu-img dd from iSCSI: %v\n%s", err, out)
	}
	got, err := os.ReadFile(back)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("data read back over iSCSI differs (%d bytes, %v)", len(got), err)
	}
	// The cache and upload-buffer figures reflect those 4 MiB, whether or
	// not a periodic cut has uploaded them yet.
	checkCacheFiguresPlausible(t, ctx, s.endpoint(), g.arn, 4<<20)

	// ListVolumeInitiators names the initiator while it is logged in (a
	// qemu-io session held open on its standard input) and forgets it
	// once it logs out.
	const holder = "iqn.2026-11.test:e2e-holder"
	listInitiators := func() []string {
		out, err := c.sgw.ListVolumeInitiators(ctx, &storagegateway.ListVolumeInitiatorsInput{VolumeARN: vol.VolumeARN})
		if err != nil {
			t.Fatalf("ListVolumeInitiators: %v", err)
		}
		return out.Initiators
	}
	waitInitiators := func(want []string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for got := listInitiators(); !slices.Equal(got, want); got = listInitiators() {
			if time.Now().After(deadline) {
				t.Fatalf("ListVolumeInitiators = %q, want %q", got, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	qio := exec.Command("qemu-io", "--image-opts", "driver=iscsi,transport=tcp,portal="+portal+",target="+iqn+
		",lun="+strconv.Itoa(int(aws.ToInt32(attrs.LunNumber)))+",initiator-name="+holder)
	stdin, err := qio.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := qio.Start(); err != nil {
		t.Fatalf("qemu-io: %v", err)
	}
	t.Cleanup(func() { _ = qio.Process.Kill(); _ = qio.Wait() })
	waitInitiators([]string{holder})
	// /metrics counts the session and the commands above, by class.
	if n := metricValue(t, s, "volgw_iscsi_sessions"); n != 1 {
		t.Errorf("volgw_iscsi_sessions = %v with one initiator logged in", n)
	}
	for _, class := range []string{"read", "write", "other"} {
		if n := metricValue(t, s, `volgw_scsi_command_duration_seconds_count{class="`+class+`"}`); n < 1 {
			t.Errorf("%s commands timed: %v", class, n)
		}
	}
	checkDashboardMetrics(t, s)
	stdin.Close() // qemu-io quits at end of input and logs out
	_ = qio.Wait()
	waitInitiators(nil)

	// CHAP set through the API is what the target demands.
	const initiator, secret = "iqn.2026-11.test:e2e-host", "chap-secret-1234"
	if _, err := c.sgw.UpdateChapCredentials(ctx, &storagegateway.UpdateChapCredentialsInput{TargetARN: attrs.TargetARN,
		InitiatorName: aws.String(initiator), SecretToAuthenticateInitiator: aws.String(secret)}); err != nil {
		t.Fatal(err)
	}
	if out, err := tool("iscsi-inq", "-i", initiator, lunURL); err == nil {
		t.Fatalf("login without CHAP accepted after UpdateChapCredentials:\n%s", out)
	}
	if out, err := tool("iscsi-inq", "-i", initiator, "iscsi://"+initiator+"%wrong-secret-0000@"+portal+"/"+iqn+"/0"); err == nil {
		t.Fatalf("login with a wrong CHAP secret accepted:\n%s", out)
	}
	if out, err := tool("iscsi-inq", "-i", initiator, "iscsi://"+initiator+"%"+secret+"@"+portal+"/"+iqn+"/0"); err != nil {
		t.Fatalf("login with the CHAP secret refused: %v\n%s", err, out)
	}

	if _, err := c.sgw.DeleteVolume(ctx, &storagegateway.DeleteVolumeInput{VolumeARN: vol.VolumeARN}); err != nil {
		t.Fatal(err)
	}
	out, err = tool("iscsi-ls", "iscsi://"+portal)
	if strings.Contains(out, iqn) {
		t.Fatalf("target still listed after DeleteVolume: %v\n%s", err, out)
	}
}
