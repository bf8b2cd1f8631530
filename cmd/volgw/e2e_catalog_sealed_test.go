package main

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	sgwtypes "github.com/aws/aws-sdk-go-v2/service/storagegateway/types"

	"github.com/volgw/volgw/internal/catalog"
	"github.com/volgw/volgw/internal/seal"
)

// TestSealedCatalogCopyRebuilt: a volgw serve with --encryption-keys and
// --encryption-default-key leaves no gateway name, target name, tag value,
// schedule or snapshot description in clear anywhere in its store (the
// catalog's copy is sealed with the default key, the engine's objects with
// the volume's); rebuild-catalog without the keyring, or with one lacking
// the key, fails naming the key's ID and --encryption-keys, and rebuilds
// nothing; with the keyring (the flag, or $VOLGW_ENCRYPTION_KEYS) it
// rebuilds, and the API then shows everything as before.
func TestSealedCatalogCopyRebuilt(t *testing.T) {
	ctx := context.Background()
	keyLine, err := seal.NewKeyLine("catalog-key")
	if err != nil {
		t.Fatal(err)
	}
	keysPath := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keysPath, []byte(keyLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kr, err := seal.ParseKeyring(strings.NewReader(keyLine))
	if err != nil {
		t.Fatal(err)
	}
	key, err := kr.Key("catalog-key")
	if err != nil {
		t.Fatal(err)
	}
	keyFlags := []string{"--encryption-keys", keysPath, "--encryption-default-key", "catalog-key"}

	// What the bucket owner must not learn: chosen so that no ciphertext
	// holds them by chance.
	const (
		gatewayName  = "gw-name-R7wQ2kXz"
		targetName   = "tgt-probe-q7k2m9x"
		tagValue     = "tag-value-Jp4sN8vL"
		gwTagValue   = "gw-tag-value-Bd6tY3"
		scheduleDesc = "schedule-desc-Kc9fH2"
		snapDesc     = "snap-desc-Xe5mU1"
	)
	probes := []string{gatewayName, targetName, tagValue, gwTagValue, scheduleDesc, snapDesc}

	dataDir := t.TempDir()
	s := startServerWith(t, dataDir, keyFlags, nil)
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	gatewayID := g.arn[strings.LastIndex(g.arn, "/")+1:]
	if _, err := c.sgw.UpdateGatewayInformation(ctx, &storagegateway.UpdateGatewayInformationInput{GatewayARN: aws.String(g.arn),
		GatewayName: aws.String(gatewayName)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.sgw.AddTagsToResource(ctx, &storagegateway.AddTagsToResourceInput{ResourceARN: aws.String(g.arn),
		Tags: []sgwtypes.Tag{{Key: aws.String("site"), Value: aws.String(gwTagValue)}}}); err != nil {
		t.Fatal(err)
	}
	v, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn),
		VolumeSizeInBytes: 1 << 30, TargetName: aws.String(targetName), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("sealed-token"),
		Tags: []sgwtypes.Tag{{Key: aws.String("owner"), Value: aws.String(tagValue)}}})
	if err != nil {
		t.Fatal(err)
	}
	volumeARNs := []string{aws.ToString(v.VolumeARN)}
	if _, err := c.sgw.UpdateSnapshotSchedule(ctx, &storagegateway.UpdateSnapshotScheduleInput{VolumeARN: v.VolumeARN,
		StartAt: aws.Int32(3), RecurrenceInHours: aws.Int32(24), Description: aws.String(scheduleDesc)}); err != nil {
		t.Fatal(err)
	}
	snap, err := c.sgw.CreateSnapshot(ctx, &storagegateway.CreateSnapshotInput{VolumeARN: v.VolumeARN,
		SnapshotDescription: aws.String(snapDesc), Tags: []sgwtypes.Tag{{Key: aws.String("owner"), Value: aws.String(tagValue)}}})
	if err != nil {
		t.Fatal(err)
	}
	// Completed: its record is in the store, to be read byte by byte.
	waitSnapshotCompleted(t, ctx, c, aws.ToString(snap.SnapshotId))
	before := apiView(t, ctx, c, g.arn, volumeARNs)
	for _, p := range probes {
		if !strings.Contains(strings.Join(mapValues(before), "\n"), p) {
			t.Fatalf("the API does not show %q: the test probes nothing", p)
		}
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}

	// Every object in the store, and every name, byte by byte.
	storeDir := filepath.Join(dataDir, "store")
	copyPath := filepath.Join(storeDir, "gateways", gatewayID, "catalog.json")
	if _, err := os.Stat(copyPath); err != nil {
		t.Fatalf("no copy of the catalog in the store: %v", err)
	}
	files := 0
	if err := filepath.WalkDir(storeDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, p := range probes {
			if bytes.Contains(raw, []byte(p)) || strings.Contains(path, p) {
				t.Errorf("%s holds %q in clear", path, p)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d objects in the store, none holding a name, tag value or description in clear", files)

	catalogPath := filepath.Join(dataDir, catalog.FileName)
	if err := os.Rename(catalogPath, catalogPath+".lost"); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"VOLGW_ACCESS_KEY_ID": e2eKeyID, "VOLGW_SECRET_ACCESS_KEY": e2eSecret}
	getenv := func(k string) string { return env[k] }
	rebuild := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, append([]string{"rebuild-catalog", "--data-dir", dataDir}, args...), &out, &errOut, getenv)
		return out.String() + errOut.String(), err
	}
	otherLine, err := seal.NewKeyLine("catalog-key")
	if err != nil {
		t.Fatal(err)
	}
	for name, set := range map[string]func(){
		"without a keyring":                    func() {},
		"with a keyring lacking the key (env)": func() { env[envEncryptionKeys] = otherLine },
	} {
		set()
		out, err := rebuild()
		delete(env, envEncryptionKeys)
		if err == nil || !strings.Contains(err.Error(), key.ID()) || !strings.Contains(err.Error(), "--encryption-keys") {
			t.Fatalf("rebuild-catalog %s = %v\n%s\nwant a refusal naming key ID %s and --encryption-keys", name, err, out, key.ID())
		}
		if _, serr := os.Stat(catalogPath); serr == nil {
			t.Fatalf("rebuild-catalog %s failed but wrote %s", name, catalogPath)
		}
		t.Logf("rebuild-catalog %s: %v", name, err)
	}

	// $VOLGW_ENCRYPTION_KEYS opens it too (into another data dir, from the
	// same store).
	env[envEncryptionKeys] = keyLine
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"rebuild-catalog", "--data-dir", t.TempDir(), "--store", "file://" + storeDir}, &out, &errOut, getenv); err != nil {
		t.Fatalf("rebuild-catalog with $%s: %v\n%s", envEncryptionKeys, err, errOut.String())
	}
	delete(env, envEncryptionKeys)

	stdout, err := rebuild("--encryption-keys", keysPath)
	if err != nil || !strings.Contains(stdout, "1 volumes") || !strings.Contains(stdout, "--encryption-default-key 'catalog-key'") {
		t.Fatalf("rebuild-catalog --encryption-keys: %v\n%s", err, stdout)
	}
	t.Logf("rebuild-catalog --encryption-keys:\n%s", stdout)

	// serve without the keyring will not write over a copy it cannot read.
	opts, err := parseServeFlags([]string{"--listen", "127.0.0.1:0", "--iscsi-listen", "127.0.0.1:0", "--data-dir", dataDir,
		"--log-level", "warn"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := start(ctx, opts, io.Discard, getenv, productionParts); err == nil {
		a.close()
		t.Fatal("volgw serve without the keyring started over a sealed catalog copy")
	} else if !strings.Contains(err.Error(), key.ID()) || !strings.Contains(err.Error(), "--encryption-keys") {
		t.Fatalf("volgw serve without the keyring: %v\nwant the key's ID and --encryption-keys named", err)
	}

	s = startServerWith(t, dataDir, keyFlags, nil)
	c = newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	after := apiView(t, ctx, c, g.arn, volumeARNs)
	for name, want := range before {
		if after[name] != want {
			t.Errorf("%s after the rebuild:\n%s\nbefore:\n%s", name, after[name], want)
		}
	}
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
