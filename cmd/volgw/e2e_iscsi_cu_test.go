package main

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"

	"github.com/volgw/volgw/internal/iscsi/conformance"
)

// apiVolume is a volume created through the API and where an initiator
// finds it.
type apiVolume struct {
	arn, targetARN, portal, iqn string
	lun                         int
}

func (v apiVolume) url() string {
	return "iscsi://" + v.portal + "/" + v.iqn + "/" + strconv.Itoa(v.lun)
}

// createAPIVolume creates a cached volume of size bytes through the API
// and returns its target as DescribeCachediSCSIVolumes reports it.
func createAPIVolume(t *testing.T, ctx context.Context, c sdkClients, g gatewayFixture, name string, size int64) apiVolume {
	t.Helper()
	vol, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn),
		VolumeSizeInBytes: size, TargetName: aws.String(name), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String(name + "-token")})
	if err != nil {
		t.Fatalf("CreateCachediSCSIVolume: %v", err)
	}
	desc, err := c.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: []string{aws.ToString(vol.VolumeARN)}})
	if err != nil {
		t.Fatalf("DescribeCachediSCSIVolumes: %v", err)
	}
	attrs := desc.CachediSCSIVolumes[0].VolumeiSCSIAttributes
	tarn := aws.ToString(attrs.TargetARN)
	return apiVolume{arn: aws.ToString(vol.VolumeARN), targetARN: tarn,
		portal: aws.ToString(attrs.NetworkInterfaceId) + ":" + strconv.Itoa(int(attrs.NetworkInterfacePort)),
		iqn:    tarn[strings.Index(tarn, "/target/")+len("/target/"):], lun: int(aws.ToInt32(attrs.LunNumber))}
}

// TestCUOnAPIVolume runs libiscsi's whole iscsi-test-cu suite with
// --dataloss against a volume created through the API, so the LUN is the
// engine's (cache, journal, object store) rather than a file, and
// requires every test it runs to pass or skip. VOLGW_CU_LOG keeps the raw
// output; VOLGW_CU_TESTS narrows the selection and VOLGW_CU_LOG_LEVEL
// sets the server's log level, for chasing a failure.
func TestCUOnAPIVolume(t *testing.T) {
	if _, err := exec.LookPath("iscsi-test-cu"); err != nil {
		t.Fatal("iscsi-test-cu not installed: run scripts/install-test-deps.sh")
	}
	var flags []string
	if l := os.Getenv("VOLGW_CU_LOG_LEVEL"); l != "" {
		flags = []string{"--log-level", l} // the server logs to stderr
	}
	s := startServerWith(t, "", flags, nil)
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	v := createAPIVolume(t, ctx, c, g, "cu-engine", 1<<30)

	start := time.Now()
	sel := os.Getenv("VOLGW_CU_TESTS") // a narrower selection, when iterating by hand
	res, out, err := conformance.RunCU(ctx, v.url(), conformance.CUOptions{Test: sel, DataLoss: true, Timeout: 15 * time.Minute})
	if p := os.Getenv("VOLGW_CU_LOG"); p != "" {
		if werr := os.WriteFile(p, []byte(out), 0o644); werr != nil {
			t.Error(werr)
		}
	}
	if err != nil {
		t.Fatalf("iscsi-test-cu did not complete: %v\n%s", err, tail(out, 4000))
	}
	t.Logf("engine-backed LUN: %d tests, %d passed, %d skipped, %d failed in %v", len(res.Tests), res.Passed, res.Skipped, res.Failed,
		time.Since(start).Round(time.Second))
	// The whole suite ran (libiscsi 1.19/1.20 have 230 tests in ALL).
	if sel == "" && len(res.Tests) < 200 {
		t.Errorf("only %d tests ran", len(res.Tests))
	}
	for _, f := range res.FailedTests() {
		t.Errorf("%s: %s", f.FullName(), f.Reason)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
