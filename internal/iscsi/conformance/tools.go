package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// toolTimeout bounds every single initiator-tool run but the conformance
// suite's.
const toolTimeout = 2 * time.Minute

// QemuRoundTrip writes size random bytes over the target's LUN with
// qemu-img convert, reads the LUN back the same way, and checks that the
// first size bytes are identical. dir holds the two image files.
func QemuRoundTrip(ctx context.Context, t Target, dir string, size int64) error {
	if size > t.Size {
		return fmt.Errorf("round trip of %d bytes does not fit the %d-byte LUN", size, t.Size)
	}
	src := make([]byte, size)
	if _, err := rand.Read(src); err != nil {
		return err
	}
	srcPath := filepath.Join(dir, "qemu-src.img")
	backPath := filepath.Join(dir, "qemu-back.img")
	if err := os.WriteFile(srcPath, src, 0o644); err != nil {
		return err
	}
	// -n: the LUN exists; qemu-img must not try to create it.
	if out, err := runBounded(ctx, toolTimeout, "qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", srcPath, t.URL()); err != nil {
		return fmt.Errorf("write to %s: %w: %s", t.Name, err, out)
	}
	if out, err := runBounded(ctx, toolTimeout, "qemu-img", "convert", "-f", "raw", "-O", "raw", t.URL(), backPath); err != nil {
		return fmt.Errorf("read back from %s: %w: %s", t.Name, err, out)
	}
	back, err := os.ReadFile(backPath)
	if err != nil {
		return err
	}
	if int64(len(back)) != t.Size {
		return fmt.Errorf("read back %d bytes from %s, the LUN has %d", len(back), t.Name, t.Size)
	}
	if !bytes.Equal(back[:size], src) {
		for i := range src {
			if back[i] != src[i] {
				return fmt.Errorf("%s: byte %d read back as %#x, written %#x", t.Name, i, back[i], src[i])
			}
		}
	}
	return nil
}

// ISCSILs runs iscsi-ls -s on the target's portal and checks that it lists
// the target and its LUN as a disk. It returns the tool's output.
func ISCSILs(ctx context.Context, t Target) (string, error) {
	out, err := runBounded(ctx, toolTimeout, "iscsi-ls", "-s", t.PortalURL(t.CHAP))
	if err != nil {
		return out, fmt.Errorf("iscsi-ls %s: %w: %s", t.Name, err, out)
	}
	if !strings.Contains(out, "Target:"+t.IQN+" Portal:") {
		return out, fmt.Errorf("iscsi-ls %s does not list target %s:\n%s", t.Name, t.IQN, out)
	}
	if !strings.Contains(out, fmt.Sprintf("Lun:%d ", t.LUN)) || !strings.Contains(out, "DIRECT_ACCESS") {
		return out, fmt.Errorf("iscsi-ls %s does not list LUN %d as a disk:\n%s", t.Name, t.LUN, out)
	}
	return out, nil
}

// ISCSIInq runs iscsi-inq on the target's LUN with creds and checks the
// standard INQUIRY data names a connected direct-access device.
func ISCSIInq(ctx context.Context, t Target, creds *CHAP) (string, error) {
	out, err := runBounded(ctx, toolTimeout, "iscsi-inq", t.URLWith(creds))
	if err != nil {
		return out, fmt.Errorf("iscsi-inq %s: %w: %s", t.Name, err, out)
	}
	for _, want := range []string{"Peripheral Qualifier:CONNECTED", "Peripheral Device Type:DIRECT_ACCESS"} {
		if !strings.Contains(out, want) {
			return out, fmt.Errorf("iscsi-inq %s: no %q in:\n%s", t.Name, want, out)
		}
	}
	return out, nil
}
