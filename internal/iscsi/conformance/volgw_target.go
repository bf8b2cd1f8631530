package conformance

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/volgw/volgw/internal/iscsi"
	"github.com/volgw/volgw/internal/scsi"
)

// StartVolgw serves a file-backed LUN 0 through volgw's own iSCSI target
// (iscsi.Server over scsi.NewLUNTable over scsi.NewDevice over
// scsi.FileBackend), in this process, on a free 127.0.0.1 port. It is
// stopped at test cleanup; its warnings are logged if the test failed.
func StartVolgw(t testing.TB, opts VolgwOptions) (Target, error) {
	t.Helper()
	if opts.Size == 0 {
		opts.Size = 64 << 20
	}
	path := opts.BackingFile
	if path == "" {
		path = filepath.Join(t.TempDir(), "volgw-lun.img")
		if err := createSparse(path, opts.Size); err != nil {
			return Target{}, err
		}
	}
	iqn := opts.IQN
	if iqn == "" {
		iqn = "iqn.1997-05.com.amazon:volgw-conformance"
	}
	fb, err := scsi.OpenFileBackend(path, opts.Size)
	if err != nil {
		return Target{}, err
	}
	dev, err := scsi.NewDevice(fb, scsi.DeviceOptions{
		SerialNumber: "vol-0123456789abcdef0",
		// As a volgw volume: UNMAP frees space in the store.
		ThinProvisioning: true,
	})
	if err != nil {
		fb.Close()
		return Target{}, err
	}
	var logBuf syncBuffer
	srv := iscsi.NewServer(iscsi.Config{
		Logger: slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	tc := iscsi.TargetConfig{IQN: iqn, LUNs: scsi.NewLUNTable(map[uint64]scsi.LogicalUnit{0: dev})}
	if opts.CHAP != nil {
		tc.CHAP = []iscsi.CHAPCredential{{InitiatorName: opts.CHAP.User, SecretToAuthenticateInitiator: opts.CHAP.Secret}}
	}
	if err := srv.AddTarget(tc); err != nil {
		fb.Close()
		return Target{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fb.Close()
		return Target{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		srv.Close()
		<-served
		fb.Close()
		if t.Failed() && logBuf.String() != "" {
			t.Logf("volgw target log:\n%s", tail(logBuf.String(), 8000))
		}
	})
	return Target{
		Name:   "volgw",
		Portal: ln.Addr().String(),
		IQN:    iqn,
		LUN:    0,
		Size:   opts.Size,
		CHAP:   opts.CHAP,
	}, nil
}
