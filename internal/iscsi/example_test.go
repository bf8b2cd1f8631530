package iscsi_test

import (
	"context"
	"log/slog"
	"net"

	"github.com/volgw/volgw/internal/iscsi"
	"github.com/volgw/volgw/internal/scsi"
)

// Serving one volume as cmd/volgw does: a scsi.Device over the volume's
// backend, in a LUN table at the volume's LunNumber, as the target
// IQNPrefix + TargetName, with the volume's CHAP credentials.
func Example() {
	var backend scsi.Backend // the engine's volume, a scsi.FileBackend in tests
	dev, err := scsi.NewDevice(backend, scsi.DeviceOptions{SerialNumber: "vol-0123456789abcdef0", ThinProvisioning: true})
	if err != nil {
		return
	}
	srv := iscsi.NewServer(iscsi.Config{Logger: slog.Default()})
	defer srv.Close()
	err = srv.AddTarget(iscsi.TargetConfig{
		IQN:  iscsi.IQNPrefix + "myvolume",
		LUNs: scsi.NewLUNTable(map[uint64]scsi.LogicalUnit{0: dev}),
		CHAP: []iscsi.CHAPCredential{{
			InitiatorName:                 "iqn.1993-08.org.debian:01:host1",
			SecretToAuthenticateInitiator: "111111111111",
			SecretToAuthenticateTarget:    "222222222222", // mutual CHAP
		}},
	})
	if err != nil {
		return
	}
	ln, err := net.Listen("tcp", ":3260") // --iscsi-listen
	if err != nil {
		return
	}
	go srv.Serve(context.Background(), ln)
	// Later: srv.SetCHAP on UpdateChapCredentials, srv.RemoveTarget on
	// DeleteVolume (it waits for commands in flight, so the volume can
	// then be closed).
}
