package conformance

import (
	"context"
	"strings"
	"testing"
)

// RunToolChecks runs the initiator-tool checks every target must pass, as
// subtests: iscsi-ls and iscsi-inq see it; when it has CHAP, the right
// secret logs in and a wrong secret or no credentials are refused; and a
// qemu-img convert round trip of random data comes back byte-identical.
func RunToolChecks(t *testing.T, tgt Target) {
	ctx := context.Background()
	t.Run("iscsi-ls", func(t *testing.T) {
		if out, err := ISCSILs(ctx, tgt); err != nil {
			t.Fatal(err)
		} else {
			t.Logf("%s", out)
		}
	})
	t.Run("iscsi-inq", func(t *testing.T) {
		if _, err := ISCSIInq(ctx, tgt, tgt.CHAP); err != nil {
			t.Fatal(err)
		}
	})
	if tgt.CHAP != nil {
		t.Run("CHAP-wrong-secret-refused", func(t *testing.T) {
			wrong := &CHAP{User: tgt.CHAP.User, Secret: tgt.CHAP.Secret + "x"}
			out, err := ISCSIInq(ctx, tgt, wrong)
			if err == nil {
				t.Fatalf("iscsi-inq with a wrong CHAP secret logged in:\n%s", out)
			}
			requireLoginRefused(t, out)
		})
		t.Run("CHAP-no-credentials-refused", func(t *testing.T) {
			out, err := ISCSIInq(ctx, tgt, nil)
			if err == nil {
				t.Fatalf("iscsi-inq without credentials logged in to a CHAP target:\n%s", out)
			}
			requireLoginRefused(t, out)
		})
	}
	t.Run("qemu-img-round-trip", func(t *testing.T) {
		size := min(tgt.Size, 16<<20)
		if err := QemuRoundTrip(ctx, tgt, t.TempDir(), size); err != nil {
			t.Fatal(err)
		}
	})
}

// requireLoginRefused checks that a failed iscsi-inq failed at login, not
// for some unrelated reason that would make the CHAP check vacuous.
func requireLoginRefused(t *testing.T, out string) {
	t.Helper()
	if !strings.Contains(strings.ToLower(out), "login") {
		t.Fatalf("iscsi-inq failed, but not at login:\n%s", out)
	}
	t.Logf("refused as expected: %s", strings.TrimSpace(out))
}
