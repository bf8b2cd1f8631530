//go:build cu

package scsi_test

// This test runs libiscsi's iscsi-test-cu against a file-backed LUN served
// by volgw's own iSCSI target, for working on SCSI semantics:
//
//	go test -tags cu -run TestCU ./internal/scsi/ -v [-args -cu.test=ALL.Read10]
//
// The conformance harness (internal/iscsi/conformance) does the counted,
// compared-to-tgtd run; this one only shows what fails.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/iscsi"
	"github.com/volgw/volgw/internal/scsi"
)

var (
	cuTest      = flag.String("cu.test", "ALL", "iscsi-test-cu --test pattern")
	cuCorpus    = flag.String("cu.corpus", "", "write the distinct CDBs seen as FuzzExecute seeds into this directory")
	cuReadOnly  = flag.Bool("cu.readonly", false, "serve the LUN read-only (for ALL.ReadOnly)")
	cuMultipath = flag.Bool("cu.multipath", false, "give iscsi-test-cu the target twice, as two paths (for ALL.MultipathIO)")
	cuRemovable = flag.Bool("cu.removable", false, "serve a removable medium (for ALL.PreventAllow, ALL.StartStopUnit, ALL.NoMedia)")
)

// recorder is a LogicalUnit in front of the real one that keeps the first
// few distinct CDBs of each opcode, with their data, as fuzz seeds.
type recorder struct {
	scsi.LogicalUnit
	mu    sync.Mutex // guards seen and perOp
	seen  map[string]bool
	perOp map[byte]int
	dir   string
}

func (r *recorder) Execute(ctx context.Context, cmd *scsi.Command) scsi.Response {
	if len(cmd.CDB) > 0 {
		r.mu.Lock()
		key := string(cmd.CDB)
		if !r.seen[key] && r.perOp[cmd.CDB[0]] < 4 {
			r.seen[key] = true
			r.perOp[cmd.CDB[0]]++
			data := cmd.DataOut
			if len(data) > 520 {
				data = data[:520]
			}
			seed := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\nuint32(%d)\n", cmd.CDB, data, cmd.ExpectedDataTransferLength)
			sum := sha256.Sum256([]byte(seed))
			os.WriteFile(filepath.Join(r.dir, "cu-"+hex.EncodeToString(sum[:8])), []byte(seed), 0o644)
		}
		r.mu.Unlock()
	}
	return r.LogicalUnit.Execute(ctx, cmd)
}

// NexusLost passes session ends through: SPC-2 reservations depend on it.
func (r *recorder) NexusLost(nexus string) {
	if n, ok := r.LogicalUnit.(interface{ NexusLost(string) }); ok {
		n.NexusLost(nexus)
	}
}

// serve starts volgw's iSCSI target with a file-backed LUN 0 of size
// bytes on 127.0.0.1 and returns its URL; everything stops at cleanup.
func serve(t *testing.T, size int64, wrap func(scsi.LogicalUnit) scsi.LogicalUnit) string {
	t.Helper()
	fb, err := scsi.OpenFileBackend(filepath.Join(t.TempDir(), "lun0.img"), size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fb.Close() })
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dev, err := scsi.NewDevice(fb, scsi.DeviceOptions{SerialNumber: "vol-cu", ThinProvisioning: true, ReadOnly: *cuReadOnly, Removable: *cuRemovable, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	const iqn = "iqn.1997-05.com.amazon:vol-cu"
	var lu scsi.LogicalUnit = scsi.NewLUNTable(map[uint64]scsi.LogicalUnit{0: dev})
	if wrap != nil {
		lu = wrap(lu)
	}
	srv := iscsi.NewServer(iscsi.Config{Logger: log})
	if err := srv.AddTarget(iscsi.TargetConfig{IQN: iqn, LUNs: lu}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); srv.Close(); <-done })
	return "iscsi://" + ln.Addr().String() + "/" + iqn + "/0"
}

func TestCU(t *testing.T) {
	if _, err := exec.LookPath("iscsi-test-cu"); err != nil {
		t.Skip("iscsi-test-cu not installed")
	}
	var wrap func(scsi.LogicalUnit) scsi.LogicalUnit
	if *cuCorpus != "" {
		if err := os.MkdirAll(*cuCorpus, 0o755); err != nil {
			t.Fatal(err)
		}
		wrap = func(lu scsi.LogicalUnit) scsi.LogicalUnit {
			return &recorder{LogicalUnit: lu, seen: map[string]bool{}, perOp: map[byte]int{}, dir: *cuCorpus}
		}
	}
	url := serve(t, 64<<20, wrap)
	runCtx, stop := context.WithTimeout(context.Background(), 10*time.Minute)
	defer stop()
	cmd := exec.CommandContext(runCtx, "iscsi-test-cu", "--dataloss", "-V", "--test="+*cuTest,
		"--initiator-name=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test",
		"--initiator-name-2=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2", url)
	if *cuMultipath {
		cmd.Args = append(cmd.Args, url)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Logf("iscsi-test-cu: %v", err)
	}
	os.WriteFile(filepath.Join(os.TempDir(), "volgw-scsi-cu.txt"), out, 0o644)
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "[FAILED]") || strings.Contains(line, "tests ") || strings.Contains(line, "asserts ") {
			t.Log(line)
		}
	}
	// CUnit's summary row: "tests  Total Ran Passed Failed Inactive".
	m := regexp.MustCompile(`(?m)^\s+tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no CUnit summary in iscsi-test-cu output (saved in %s)", filepath.Join(os.TempDir(), "volgw-scsi-cu.txt"))
	}
	if m[4] != "0" {
		t.Errorf("iscsi-test-cu: %s of %s tests failed", m[4], m[1])
	}
}

// TestQemuImgRoundTrip copies an image with holes and data into the LUN
// with qemu-img (large transfers, and WRITE SAME/UNMAP for its zero
// detection) and back out, and compares.
func TestQemuImgRoundTrip(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	const size = 32 << 20
	url := serve(t, size, nil)
	dir := t.TempDir()
	src, back := filepath.Join(dir, "src.raw"), filepath.Join(dir, "back.raw")
	img := make([]byte, size)
	for i := 0; i < size; i += 1 << 20 {
		if (i>>20)%3 == 1 {
			continue // a zero MiB every third
		}
		for j := i; j < i+1<<20; j += 8 {
			binary.LittleEndian.PutUint64(img[j:], uint64(j)*0x9e3779b97f4a7c15)
		}
	}
	if err := os.WriteFile(src, img, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithTimeout(context.Background(), 5*time.Minute)
	defer stop()
	for _, args := range [][]string{
		{"convert", "-n", "-f", "raw", "-O", "raw", src, url},
		{"convert", "-f", "raw", "-O", "raw", url, back},
	} {
		if out, err := exec.CommandContext(ctx, "qemu-img", args...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
		}
	}
	got, err := os.ReadFile(back)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, img) {
		t.Fatalf("image read back through iSCSI differs from the one written")
	}
}
