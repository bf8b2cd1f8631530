package conformance

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// CHAP is a one-way CHAP account: the initiator proves it knows Secret.
type CHAP struct {
	User, Secret string
}

// Target is an iSCSI target under test, as the initiator tools address it.
type Target struct {
	Name   string // "tgtd" or "volgw", for tables and logs
	Portal string // 127.0.0.1:PORT
	IQN    string
	LUN    int
	Size   int64 // bytes of the LUN
	CHAP   *CHAP // nil: no authentication
}

// URL is the libiscsi URL of the target's LUN with its CHAP credentials,
// as iscsi-test-cu, iscsi-inq and qemu-img take it.
func (t Target) URL() string { return t.URLWith(t.CHAP) }

// URLWith is URL with other credentials (nil for none), to test that wrong
// ones are refused.
func (t Target) URLWith(c *CHAP) string {
	auth := ""
	if c != nil {
		auth = c.User + "%" + c.Secret + "@"
	}
	return fmt.Sprintf("iscsi://%s%s/%s/%d", auth, t.Portal, t.IQN, t.LUN)
}

// PortalURL is the URL of the portal alone, for iscsi-ls.
func (t Target) PortalURL(c *CHAP) string {
	auth := ""
	if c != nil {
		auth = c.User + "%" + c.Secret + "@"
	}
	return "iscsi://" + auth + t.Portal
}

// TGTDOptions configure StartTGTD.
type TGTDOptions struct {
	// Size of the backing file; 64 MiB when 0.
	Size int64
	// BackingFile, when set, is used as is (it must exist and be Size
	// bytes); otherwise a sparse file is created in a temporary directory.
	BackingFile string
	// IQN of the target; a test-specific one when empty.
	IQN  string
	CHAP *CHAP
	// Direct opens the backing file with O_DIRECT (bsoflags=direct),
	// bypassing the page cache; off by default, as for volgw's file LUN.
	Direct bool
}

// StartTGTD runs the reference target, tgtd, in the foreground on a free
// 127.0.0.1 port with its own control port (so several can run at once;
// tgtadm reaches each with --control-port), creates one target with a
// file-backed disk at LUN 1 (tgtd reserves LUN 0 for its controller), binds
// it to all initiators, and kills it at cleanup. It fails the test if tgtd
// or tgtadm is missing (scripts/install-test-deps.sh installs them).
func StartTGTD(t testing.TB, opts TGTDOptions) Target {
	t.Helper()
	for _, tool := range []string{"tgtd", "tgtadm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("conformance: %s not found (run scripts/install-test-deps.sh): %v", tool, err)
		}
	}
	if opts.Size == 0 {
		opts.Size = 64 << 20
	}
	backing := opts.BackingFile
	if backing == "" {
		backing = filepath.Join(t.TempDir(), "tgtd-lun.img")
		if err := createSparse(backing, opts.Size); err != nil {
			t.Fatalf("conformance: %v", err)
		}
	}
	iqn := opts.IQN
	if iqn == "" {
		iqn = "iqn.2026-11.io.volgw.test:tgtd"
	}
	var lastErr error
	for range 3 {
		tgt, err := startTGTD(t, backing, iqn, opts)
		if err == nil {
			return tgt
		}
		lastErr = err
	}
	t.Fatalf("conformance: tgtd did not start: %v", lastErr)
	return Target{}
}

func createSparse(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func startTGTD(t testing.TB, backing, iqn string, opts TGTDOptions) (Target, error) {
	port, err := freePort()
	if err != nil {
		return Target{}, err
	}
	// The control port only names tgtd's management socket
	// (/var/run/tgtd/socket.N, locked while in use); any number no other
	// tgtd uses will do, and tgtd accepts only small ones. Deriving it from
	// the portal port keeps concurrent tests apart; a clash makes tgtd exit
	// and the caller retry on other ports.
	control := strconv.Itoa(1000 + port%30000)
	portal := fmt.Sprintf("127.0.0.1:%d", port)
	var out syncBuffer
	cmd := exec.Command("tgtd", "-f", "-C", control, "--iscsi", "portal="+portal)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return Target{}, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	// tgtd ignores SIGTERM while it has targets; SIGKILL the group.
	stop := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		os.Remove("/var/run/tgtd/socket." + control)
		os.Remove("/var/run/tgtd/socket." + control + ".lock")
	}
	if err := waitListening(portal, exited, 10*time.Second); err != nil {
		stop()
		return Target{}, fmt.Errorf("%w; tgtd output: %s", err, out.String())
	}
	adm := func(args ...string) error {
		full := append([]string{"--control-port", control, "--lld", "iscsi"}, args...)
		o, err := runBounded(context.Background(), 30*time.Second, "tgtadm", full...)
		if err != nil {
			return fmt.Errorf("tgtadm %v: %w: %s", args, err, o)
		}
		return nil
	}
	lun := []string{"--mode", "logicalunit", "--op", "new", "--tid", "1", "--lun", "1", "--backing-store", backing}
	if opts.Direct {
		lun = append(lun, "--bsoflags", "direct")
	}
	steps := [][]string{
		{"--mode", "target", "--op", "new", "--tid", "1", "--targetname", iqn},
		lun,
		{"--mode", "target", "--op", "bind", "--tid", "1", "--initiator-address", "ALL"},
	}
	if opts.CHAP != nil {
		steps = append(steps,
			[]string{"--mode", "account", "--op", "new", "--user", opts.CHAP.User, "--password", opts.CHAP.Secret},
			[]string{"--mode", "account", "--op", "bind", "--tid", "1", "--user", opts.CHAP.User})
	}
	for _, s := range steps {
		if err := adm(s...); err != nil {
			stop()
			return Target{}, fmt.Errorf("%w; tgtd output: %s", err, out.String())
		}
	}
	t.Cleanup(stop)
	return Target{Name: "tgtd", Portal: portal, IQN: iqn, LUN: 1, Size: opts.Size, CHAP: opts.CHAP}, nil
}
