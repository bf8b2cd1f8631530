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
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

func TestCU(t *testing.T) {
	if _, err := exec.LookPath("iscsi-test-cu"); err != nil {
		t.Skip("iscsi-test-cu not installed")
	}
	fb, err := scsi.OpenFileBackend(filepath.Join(t.TempDir(), "lun0.img"), 64<<20)
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
	srv := iscsi.NewServer(iscsi.Config{Logger: log})
	var lu scsi.LogicalUnit = scsi.NewLUNTable(map[uint64]scsi.LogicalUnit{0: dev})
	if *cuCorpus != "" {
		if err := os.MkdirAll(*cuCorpus, 0o755); err != nil {
			t.Fatal(err)
		}
		lu = &recorder{LogicalUnit: lu, seen: map[string]bool{}, perOp: map[byte]int{}, dir: *cuCorpus}
	}
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

	url := "iscsi://" + ln.Addr().String() + "/" + iqn + "/0"
	runCtx, stop := context.WithTimeout(ctx, 10*time.Minute)
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
		if strings.Contains(line, "FAILED") || strings.Contains(line, "Test:") && !strings.Contains(line, "passed") ||
			strings.Contains(line, "tests ") || strings.Contains(line, "asserts ") {
			t.Log(line)
		}
	}
}
