package product

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"
)

// startTGTD runs tgtd in the foreground on a free loopback port with its
// own control port, serving backing at LUN 1 of one target bound to all
// initiators, with its default rdwr (buffered) backing store. As in
// internal/iscsi/conformance, but started through benchEnv so that the
// script's trap can kill it.
func (e *benchEnv) startTGTD(ctx context.Context, backing string) (device, error) {
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return device{}, err
		}
		// The control port only names tgtd's socket (/var/run/tgtd/socket.N);
		// deriving it from the portal port keeps concurrent runs apart.
		control := strconv.Itoa(1000 + port%30000)
		portal := fmt.Sprintf("127.0.0.1:%d", port)
		p, err := e.start("tgtd", nil, "tgtd", "-f", "-C", control, "--iscsi", "portal="+portal)
		if err != nil {
			return device{}, err
		}
		e.t.Cleanup(func() {
			os.Remove("/var/run/tgtd/socket." + control)
			os.Remove("/var/run/tgtd/socket." + control + ".lock")
		})
		if lastErr = waitListening(portal, p, 10*time.Second); lastErr != nil {
			p.kill()
			continue
		}
		const iqn = "iqn.2026-11.io.volgw.bench:tgtd"
		for _, s := range [][]string{
			{"--mode", "target", "--op", "new", "--tid", "1", "--targetname", iqn},
			{"--mode", "logicalunit", "--op", "new", "--tid", "1", "--lun", "1", "--backing-store", backing},
			{"--mode", "target", "--op", "bind", "--tid", "1", "--initiator-address", "ALL"},
		} {
			if _, err := run(ctx, 30*time.Second, "tgtadm", append([]string{"--control-port", control, "--lld", "iscsi"}, s...)...); err != nil {
				lastErr = err
				break
			}
		}
		if lastErr != nil {
			p.kill()
			continue
		}
		return device{name: "tgtd", url: "iscsi://" + portal + "/" + iqn + "/1"}, nil
	}
	return device{}, fmt.Errorf("tgtd did not start: %w", lastErr)
}
