package scsi_test

// TestCU runs libiscsi's iscsi-test-cu suites that need a unit configured
// differently from the one the conformance harness
// (internal/iscsi/conformance, cmd/volgw TestCUOnAPIVolume) serves: a
// read-only unit, a removable medium, and the same target given twice as
// two paths. Each must run to the end with no failure.
// VOLGW_CU_CORPUS=dir also keeps the distinct CDBs seen as FuzzExecute
// seeds.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/iscsi"
	"github.com/volgw/volgw/internal/scsi"
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
func serve(t *testing.T, size int64, opts scsi.DeviceOptions, wrap func(scsi.LogicalUnit) scsi.LogicalUnit) string {
	t.Helper()
	fb, err := scsi.OpenFileBackend(filepath.Join(t.TempDir(), "lun0.img"), size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fb.Close() })
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts.SerialNumber, opts.ThinProvisioning, opts.Logger = "vol-cu", true, log
	dev, err := scsi.NewDevice(fb, opts)
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

// needTool returns a tool's path. A missing tool skips the test, except
// under CI (CI=true), where it is a failure: CI installs every tool.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (scripts/install-test-deps.sh installs it)", name)
		}
		t.Skipf("%s not installed (scripts/install-test-deps.sh installs it)", name)
	}
}

func TestCU(t *testing.T) {
	needTool(t, "iscsi-test-cu")
	for _, mode := range []struct {
		name, tests string
		opts        scsi.DeviceOptions
		paths       int
		minTests    int // libiscsi 1.19.0 runs 1, 12 and 4
	}{
		{"readonly", "ALL.ReadOnly", scsi.DeviceOptions{ReadOnly: true}, 1, 1},
		{"removable", "ALL.PreventAllow,ALL.StartStopUnit,ALL.NoMedia", scsi.DeviceOptions{Removable: true}, 1, 12},
		{"multipath", "ALL.MultipathIO", scsi.DeviceOptions{}, 2, 4},
	} {
		t.Run(mode.name, func(t *testing.T) {
			var wrap func(scsi.LogicalUnit) scsi.LogicalUnit
			if dir := os.Getenv("VOLGW_CU_CORPUS"); dir != "" {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				wrap = func(lu scsi.LogicalUnit) scsi.LogicalUnit {
					return &recorder{LogicalUnit: lu, seen: map[string]bool{}, perOp: map[byte]int{}, dir: dir}
				}
			}
			url := serve(t, 64<<20, mode.opts, wrap)
			runCtx, stop := context.WithTimeout(context.Background(), 10*time.Minute)
			defer stop()
			cmd := exec.CommandContext(runCtx, "iscsi-test-cu", "--dataloss", "-V", "--test="+mode.tests,
				"--initiator-name=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test",
				"--initiator-name-2=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2")
			for range mode.paths {
				cmd.Args = append(cmd.Args, url)
			}
			cmd.WaitDelay = 5 * time.Second
			out, err := cmd.CombinedOutput()
			// CUnit's summary row: "tests  Total Ran Passed Failed Inactive".
			m := regexp.MustCompile(`(?m)^\s+tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)`).FindStringSubmatch(string(out))
			if m == nil {
				t.Fatalf("iscsi-test-cu: %v, and no CUnit summary:\n%s", err, out)
			}
			total, ran, failed := atoi(t, m[1]), atoi(t, m[2]), atoi(t, m[4])
			t.Logf("iscsi-test-cu %s: %d tests, %d ran, %d failed", mode.tests, total, ran, failed)
			if err != nil || failed != 0 || ran != total || ran < mode.minTests {
				for _, line := range strings.Split(string(out), "\n") {
					if strings.Contains(line, "[FAILED]") || strings.Contains(line, "CU_ASSERT") {
						t.Log(line)
					}
				}
				t.Errorf("iscsi-test-cu %s: exit %v, %d of %d tests ran (at least %d expected), %d failed", mode.tests, err, ran, total, mode.minTests, failed)
			}
		})
	}
}

func atoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestQemuImgRoundTrip copies an image with holes and data into the LUN
// with qemu-img (large transfers, and WRITE SAME/UNMAP for its zero
// detection) and back out, and compares.
func TestQemuImgRoundTrip(t *testing.T) {
	needTool(t, "qemu-img")
	const size = 32 << 20
	url := serve(t, size, scsi.DeviceOptions{}, nil)
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
