package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
)

// TestSnapshotExportImport: `volgw snapshot export` and `import` against a
// running server, through its EBS direct APIs. A volume written over
// iSCSI in two places is snapshotted and exported to a sparse raw image
// holding exactly those bytes; the image imported is a new completed
// snapshot that restores to a volume with the same bytes; an image
// changed in one block and imported on top of it (--parent) differs from
// it by exactly that block. Output is plain lines, since the test's
// stderr is not a terminal (TestSnapshotExportProgressBar covers one).
func TestSnapshotExportImport(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	arn := createVolumes(t, ctx, c, g, "export-src")[0]
	lun := volumeLUNURL(t, ctx, c, arn)

	// 8 MiB of random data at 0 and 1 MiB of a pattern at 600 MiB; the
	// rest of the 1 GiB volume is never written.
	head := writeRandomOverISCSI(t, lun, 8<<20)
	if out, err := runTool(t, os.Environ(), 2*time.Minute, "qemu-io", "-f", "raw", "-c", "write -P 0x5a 600M 1M", lun); err != nil {
		t.Fatalf("qemu-io write: %v\n%s", err, out)
	}
	want := make([]byte, 1<<30)
	copy(want, head)
	copy(want[600<<20:601<<20], bytes.Repeat([]byte{0x5a}, 1<<20))

	snapID := snapshotOf(t, ctx, c, arn, "to export")

	env := map[string]string{"VOLGW_ACCESS_KEY_ID": e2eKeyID, "VOLGW_SECRET_ACCESS_KEY": e2eSecret}
	volgw := func(args ...string) (stdout, stderr string, err error) {
		var out, errOut bytes.Buffer
		err = run(ctx, append([]string{"snapshot", args[0], "--endpoint", s.endpoint()}, args[1:]...), &out, &errOut, func(k string) string { return env[k] })
		return out.String(), errOut.String(), err
	}

	dir := t.TempDir()
	image := filepath.Join(dir, "export.img")
	_, progress, err := volgw("export", snapID, image)
	if err != nil {
		t.Fatalf("export: %v\n%s", err, progress)
	}
	checkImage(t, image, want)
	// 18 blocks were listed (16 at 0, 2 at 600 MiB): the last line
	// reports all of them.
	if !regexp.MustCompile(`(?m)^export `+snapID+`: 100%  9\.0 MiB / 9\.0 MiB  \S+ \S+/s  in \S+$`).MatchString(progress) || strings.Contains(progress, "\r") {
		t.Errorf("export's report on a non-terminal:\n%q", progress)
	}
	if _, _, err := volgw("export", snapID, image); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("export over an existing file without --force: %v", err)
	}
	if _, stderr, err := volgw("export", "snap-0123456789abcdef0", filepath.Join(dir, "none.img")); err == nil ||
		!strings.Contains(err.Error(), "ResourceNotFoundException") {
		t.Errorf("export of a snapshot that does not exist: %v\n%s", err, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "none.img")); !os.IsNotExist(err) {
		t.Errorf("a failed export left its file: %v", err)
	}

	// Import: a new snapshot, completed, of the image's size.
	out, progress, err := volgw("import", "--description", "imported", image)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, progress)
	}
	imported := strings.TrimSpace(out)
	if !regexp.MustCompile(`^snap-[0-9a-f]{17}$`).MatchString(imported) {
		t.Fatalf("import printed %q", out)
	}
	if !regexp.MustCompile(`(?m)^import export\.img: 100%  9\.0 MiB / 9\.0 MiB  `).MatchString(progress) {
		t.Errorf("import's report:\n%s", progress)
	}
	ds, err := c.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{imported}})
	if err != nil || len(ds.Snapshots) != 1 {
		t.Fatalf("DescribeSnapshots %s: %+v %v", imported, ds, err)
	}
	if sn := ds.Snapshots[0]; sn.State != "completed" || aws.ToInt32(sn.VolumeSize) != 1 || aws.ToString(sn.Description) != "imported" {
		t.Errorf("imported snapshot: state %s, size %d GiB, description %q", sn.State, aws.ToInt32(sn.VolumeSize), aws.ToString(sn.Description))
	}
	// Restored to a volume, it reads back as the image over iSCSI.
	restored, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn),
		VolumeSizeInBytes: 1 << 30, SnapshotId: aws.String(imported), TargetName: aws.String("imported"),
		NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("imported")})
	if err != nil {
		t.Fatal(err)
	}
	checkBytesOverISCSI(t, volumeLUNURL(t, ctx, c, aws.ToString(restored.VolumeARN)), want[:8<<20])
	again := filepath.Join(dir, "again.img")
	if _, stderr, err := volgw("export", imported, again); err != nil {
		t.Fatalf("export of the imported snapshot: %v\n%s", err, stderr)
	}
	checkImage(t, again, want)

	// One block changed, imported on the first import: ListChangedBlocks
	// between the two names that block alone.
	f, err := os.OpenFile(again, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("changed"), 300<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	copy(want[300<<20:], "changed")
	out, stderr, err := volgw("import", "--parent", imported, again)
	if err != nil {
		t.Fatalf("import --parent: %v\n%s", err, stderr)
	}
	child := strings.TrimSpace(out)
	changed, err := ebsClientFor(s).ListChangedBlocks(ctx, &ebs.ListChangedBlocksInput{FirstSnapshotId: aws.String(imported), SecondSnapshotId: aws.String(child)})
	if err != nil {
		t.Fatal(err)
	}
	if len(changed.ChangedBlocks) != 1 || aws.ToInt32(changed.ChangedBlocks[0].BlockIndex) != 600 {
		t.Errorf("ListChangedBlocks %s → %s: %d blocks, want block 600 alone", imported, child, len(changed.ChangedBlocks))
	}
	third := filepath.Join(dir, "third.img")
	if _, stderr, err := volgw("export", child, third); err != nil {
		t.Fatalf("export of %s: %v\n%s", child, err, stderr)
	}
	checkImage(t, third, want)
}

// checkImage fails the test unless the file at path holds want, and holds
// it sparsely: no more than the non-zero blocks are allocated.
func checkImage(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, want %d; first difference at byte %d", path, len(got), len(want), firstDifference(got, want))
	}
	var nonZero int64
	for off := 0; off < len(want); off += snapshotBlockSize {
		if !isZeros(want[off:min(off+snapshotBlockSize, len(want))]) {
			nonZero += snapshotBlockSize
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if allocated := st.Blocks * 512; allocated > nonZero+(1<<20) {
		t.Errorf("%s: %d bytes allocated for %d bytes of non-zero blocks: not sparse", path, allocated, nonZero)
	}
}

// TestSnapshotExportProgressBar: on a terminal (a tmux pane, as a person
// would run it) export draws one bar redrawn in place, as wide as the
// pane allows, ending at 100%.
func TestSnapshotExportProgressBar(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tmux not installed (Debian package tmux)")
		}
		t.Skip("tmux not installed")
	}
	bin := buildTestBinary(t)
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	arn := createVolumes(t, ctx, c, g, "bar-src")[0]
	writeRandomOverISCSI(t, volumeLUNURL(t, ctx, c, arn), 32<<20)
	snapID := snapshotOf(t, ctx, c, arn, "bar")

	dir := t.TempDir()
	socket := filepath.Join(dir, "tmux.sock")
	tm := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(tmux, append([]string{"-S", socket}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// The shell prints DONE once export has exited, then waits, so the
	// pane stays to be read.
	cmd := "VOLGW_ACCESS_KEY_ID=" + e2eKeyID + " VOLGW_SECRET_ACCESS_KEY=" + e2eSecret + " " + bin +
		" snapshot export --endpoint " + s.endpoint() + " " + snapID + " " + filepath.Join(dir, "bar.img") + "; echo DONE $?; sleep 600"
	tm("new-session", "-d", "-x", "100", "-y", "20", "sh", "-c", cmd)
	t.Cleanup(func() { exec.Command(tmux, "-S", socket, "kill-server").Run() })
	var pane string
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(pane, "DONE") {
		if time.Now().After(deadline) {
			t.Fatalf("export did not finish in the pane:\n%s", pane)
		}
		time.Sleep(100 * time.Millisecond)
		pane = tm("capture-pane", "-p")
	}
	lines := strings.Split(strings.TrimRight(pane, "\n"), "\n")
	bar := regexp.MustCompile(`^\[#{42}\] 100%  32\.0 MiB / 32\.0 MiB  \S+ \S+/s  in \S+$`)
	if len(lines) != 2 || !bar.MatchString(strings.TrimRight(lines[0], " ")) || lines[1] != "DONE 0" {
		t.Fatalf("the pane after export:\n%s", pane)
	}
	if len(lines[0]) >= 100 {
		t.Errorf("the bar fills the pane's width (%d columns): a terminal would wrap it", len(lines[0]))
	}
}
