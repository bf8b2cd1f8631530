package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestListLocalDisksAfterGrowing: the disks a larger configured size adds
// are what ListLocalDisks reports as still to be added (AVAILABLE), and
// AddCache / AddUploadBuffer take them, through the AWS CLI and boto3;
// adding one twice, or one that does not exist, answers AWS's error; the
// answer fits the model's output shape.
func TestListLocalDisksAfterGrowing(t *testing.T) {
	dataDir := t.TempDir()
	ctx := context.Background()
	first := startServer(t, dataDir) // 2 GiB of cache, 1 GiB of upload buffer
	c := newSDKClients(first.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, first.endpoint()) // cache0 and buffer0 allocated
	if err := first.close(); err != nil {
		t.Fatal(err)
	}
	s := startServerWith(t, dataDir, []string{"--cache-disk-size", "3GiB", "--upload-buffer-disk-size", "2GiB"}, nil)

	type disk struct {
		DiskId, DiskPath, DiskNode, DiskStatus, DiskAllocationType string
		DiskSizeInBytes                                            int64
	}
	list := func(out string) map[string]disk {
		t.Helper()
		var l struct {
			GatewayARN string
			Disks      []disk
		}
		if err := json.Unmarshal([]byte(out), &l); err != nil || l.GatewayARN != g.arn {
			t.Fatalf("list-local-disks %q: %v", out, err)
		}
		m := map[string]disk{}
		for _, d := range l.Disks {
			m[d.DiskId] = d
		}
		return m
	}
	want := func(what string, got map[string]disk, alloc map[string]string) {
		t.Helper()
		sizes := map[string]int64{"cache0": 2 << 30, "cache1": 1 << 30, "buffer0": 1 << 30, "buffer1": 1 << 30}
		if len(got) != len(alloc) {
			t.Fatalf("%s: disks %+v", what, got)
		}
		for id, a := range alloc {
			d := got[id]
			if d.DiskAllocationType != a || d.DiskSizeInBytes != sizes[id] || d.DiskStatus != "present" ||
				d.DiskPath != filepath.Join(dataDir, "disks", id+".img") || d.DiskNode != id+".img" {
				t.Errorf("%s: %s = %+v, want %s of %d", what, id, d, a, sizes[id])
			}
		}
	}

	status, body := callJSON(t, s.endpoint(), "ListLocalDisks", map[string]any{"GatewayARN": g.arn})
	if status != http.StatusOK {
		t.Fatalf("ListLocalDisks: %d %s", status, body)
	}
	checkOutputAgainstModel(t, "ListLocalDisks", body)

	cli := awsCLIs(t)["v2"]
	if cli == "" {
		for _, p := range awsCLIs(t) {
			cli = p
		}
	}
	out, ok := runCLI(t, s, cli, "storagegateway", "list-local-disks", "--gateway-arn", g.arn)
	if !ok {
		t.Fatal(out)
	}
	want("after growing", list(out), map[string]string{"cache0": "CACHE_STORAGE", "cache1": "AVAILABLE",
		"buffer0": "UPLOAD_BUFFER", "buffer1": "AVAILABLE"})
	if out, ok := runCLI(t, s, cli, "storagegateway", "add-cache", "--gateway-arn", g.arn, "--disk-ids", "cache1"); !ok {
		t.Fatalf("add-cache cache1: %s", out)
	}
	out, ok = runCLI(t, s, cli, "storagegateway", "add-cache", "--gateway-arn", g.arn, "--disk-ids", "cache1")
	wantCLIError(t, "add-cache cache1 again", out, ok, "InvalidGatewayRequestException", "The specified disk is already allocated.")
	out, ok = runCLI(t, s, cli, "storagegateway", "add-upload-buffer", "--gateway-arn", g.arn, "--disk-ids", "buffer9")
	wantCLIError(t, "add-upload-buffer buffer9", out, ok, "InvalidGatewayRequestException", "The specified disk does not exist.")

	// A disk whose file is gone is listed "missing" and cannot be added
	// (the engine would otherwise make a new empty file in its place);
	// once the file is back it can.
	buffer1 := filepath.Join(dataDir, "disks", "buffer1.img")
	if err := os.Rename(buffer1, buffer1+".away"); err != nil {
		t.Fatal(err)
	}
	out, ok = runCLI(t, s, cli, "storagegateway", "list-local-disks", "--gateway-arn", g.arn)
	if d := list(out)["buffer1"]; !ok || d.DiskStatus != "missing" || d.DiskAllocationType != "AVAILABLE" {
		t.Errorf("list-local-disks with buffer1's file gone: %+v", d)
	}
	out, ok = runCLI(t, s, cli, "storagegateway", "add-upload-buffer", "--gateway-arn", g.arn, "--disk-ids", "buffer1")
	wantCLIError(t, "add-upload-buffer of a missing disk", out, ok, "InvalidGatewayRequestException", "The specified disk does not exist.")
	if _, err := os.Stat(buffer1); err == nil {
		t.Error("refusing a missing disk created its file")
	}
	if err := os.Rename(buffer1+".away", buffer1); err != nil {
		t.Fatal(err)
	}

	// boto3 adds the other one.
	seen := runBoto3(t, s, []boto3Call{
		{Name: "add", Service: "storagegateway", Op: "AddUploadBuffer", Params: map[string]any{"GatewayARN": g.arn, "DiskIds": []string{"buffer1"}}},
		{Name: "again", Service: "storagegateway", Op: "AddCache", Params: map[string]any{"GatewayARN": g.arn, "DiskIds": []string{"buffer1"}}},
		{Name: "list", Service: "storagegateway", Op: "ListLocalDisks", Params: map[string]any{"GatewayARN": g.arn}},
	})
	if r := seen["add"]; !r.OK {
		t.Errorf("boto3 AddUploadBuffer buffer1: %+v", r.seenError)
	}
	if r := seen["again"].seenError; r.OK || r.Status != 400 || r.ErrorCode != "DiskAlreadyAllocated" {
		t.Errorf("boto3 AddCache of an allocated disk: %+v", r)
	}
	if r := seen["list"]; !r.OK {
		t.Errorf("boto3 ListLocalDisks: %+v", r.seenError)
	} else {
		want("after adding both", list(string(r.Response)), map[string]string{"cache0": "CACHE_STORAGE", "cache1": "CACHE_STORAGE",
			"buffer0": "UPLOAD_BUFFER", "buffer1": "UPLOAD_BUFFER"})
	}
	out, ok = runCLI(t, s, cli, "storagegateway", "describe-cache", "--gateway-arn", g.arn, "--query", "CacheAllocatedInBytes")
	if !ok || strings.TrimSpace(out) != "3221225472" {
		t.Errorf("describe-cache after adding cache1: %v %q", ok, out)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "disks", "cache1.img")); err != nil {
		t.Error(err)
	}
}
