package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
)

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// TestSeedSampleRequest sends the seed page's sample request as it is
// written — the StorageGateway_20120630 target prefix, SignedHeaders
// content-type;host;x-amz-date;x-amz-target, lower-case header names —
// signed step by step as the SigV4 documentation describes (no SDK), and
// checks the sample response's status, headers and members.
func TestSeedSampleRequest(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	vol, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn),
		VolumeSizeInBytes: 1 << 30, TargetName: aws.String("seed"), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("seed-1")})
	if err != nil {
		t.Fatal(err)
	}
	body := `{ "VolumeARN": "` + aws.ToString(vol.VolumeARN) + `", "SnapshotDescription": "snapshot description" }`
	u, _ := url.Parse(s.endpoint() + "/")
	now := time.Now().UTC()
	amzDate, day := now.Format("20060102T150405Z"), now.Format("20060102")
	headers := map[string]string{
		"content-type": "application/x-amz-json-1.1",
		"host":         u.Host,
		"x-amz-date":   amzDate,
		"x-amz-target": "StorageGateway_20120630.CreateSnapshotFromVolumeRecoveryPoint",
	}
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	sort.Strings(names)
	var canon strings.Builder
	for _, k := range names {
		canon.WriteString(k + ":" + headers[k] + "\n")
	}
	payload := sha256.Sum256([]byte(body))
	creq := "POST\n/\n\n" + canon.String() + "\n" + strings.Join(names, ";") + "\n" + hex.EncodeToString(payload[:])
	creqHash := sha256.Sum256([]byte(creq))
	scope := day + "/us-east-1/storagegateway/aws4_request"
	sts := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(creqHash[:])
	key := hmacSHA256([]byte("AWS4"+e2eSecret), day)
	for _, part := range []string{"us-east-1", "storagegateway", "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	sig := hex.EncodeToString(hmacSHA256(key, sts))

	req, _ := http.NewRequest(http.MethodPost, u.String(), strings.NewReader(body))
	for _, k := range names {
		if k != "host" {
			req.Header[k] = []string{headers[k]} // lower-case, as on the seed page
		}
	}
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+e2eKeyID+"/"+scope+
		", SignedHeaders="+strings.Join(names, ";")+", Signature="+sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-amz-json-1.1" ||
		resp.Header.Get("x-amzn-RequestId") == "" || resp.Header.Get("Date") == "" || resp.Header.Get("Content-Length") == "" {
		t.Fatalf("answer %d %v: %s", resp.StatusCode, resp.Header, raw)
	}
	var out map[string]string
	if err := json.Unmarshal(raw, &out); err != nil || len(out) != 3 || !snapshotIDRe.MatchString(out["SnapshotId"]) ||
		out["VolumeARN"] != aws.ToString(vol.VolumeARN) || !recoveryPointTime.MatchString(out["VolumeRecoveryPointTime"]) {
		t.Fatalf("answer %s: %v", raw, err)
	}
}
