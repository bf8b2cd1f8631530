package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
)

// qemuIO is an interactive qemu-io holding one iSCSI session open: each
// command is written to its standard input, and its output lines are
// read back.
type qemuIO struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan struct{} // closed when the process has exited
}

// startQemuIO opens lun of target iqn at portal as initiator, with a CHAP
// secret when secret is not empty.
func startQemuIO(t *testing.T, v apiVolume, initiator, secret string) *qemuIO {
	t.Helper()
	for _, tool := range []string{"qemu-io", "iscsi-inq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: run scripts/install-test-deps.sh", tool)
		}
	}
	opts := "driver=iscsi,transport=tcp,portal=" + v.portal + ",target=" + v.iqn + ",lun=" + strconv.Itoa(v.lun) +
		",initiator-name=" + initiator
	if secret != "" {
		opts += ",user=" + initiator + ",password=" + secret
	}
	q := &qemuIO{t: t, cmd: exec.Command("qemu-io", "--image-opts", opts), lines: make(chan string, 256), done: make(chan struct{})}
	var err error
	if q.stdin, err = q.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := q.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	q.cmd.Stderr = q.cmd.Stdout
	if err := q.cmd.Start(); err != nil {
		t.Fatalf("qemu-io: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			q.lines <- sc.Text()
		}
		close(q.lines)
	}()
	go func() { _ = q.cmd.Wait(); close(q.done) }()
	t.Cleanup(q.stop)
	return q
}

// do runs one qemu-io command and returns the first output line that
// contains one of want (its result line: "… bytes at offset …" or "read
// failed: …"; libiscsi's own messages come before it), or fails the test
// after a generous deadline.
func (q *qemuIO) do(command string, want ...string) string {
	q.t.Helper()
	if _, err := io.WriteString(q.stdin, command+"\n"); err != nil {
		q.t.Fatalf("qemu-io %q: %v", command, err)
	}
	deadline := time.After(90 * time.Second)
	var seen []string
	for {
		select {
		case l, ok := <-q.lines:
			if !ok {
				q.t.Fatalf("qemu-io exited during %q; output:\n%s", command, strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			for _, w := range want {
				if strings.Contains(l, w) {
					return l
				}
			}
		case <-deadline:
			q.t.Fatalf("qemu-io %q: no line with %q within 90s; output:\n%s", command, want, strings.Join(seen, "\n"))
		}
	}
}

// ok runs a read or write that must succeed (a read given a pattern
// checks it).
func (q *qemuIO) ok(command string) {
	q.t.Helper()
	if l := q.do(command, "bytes at offset", "read failed:", "write failed:", "verification failed"); !strings.Contains(l, "bytes at offset") {
		q.t.Fatalf("qemu-io %q: %s", command, l)
	}
}

// fails runs a read or write that must fail.
func (q *qemuIO) fails(command string) {
	q.t.Helper()
	if l := q.do(command, "bytes at offset", "read failed:", "write failed:", "verification failed"); !strings.Contains(l, "failed:") {
		q.t.Fatalf("qemu-io %q succeeded: %s", command, l)
	}
}

// stop ends qemu-io: end of input makes it log out and quit; one that
// does not is killed.
func (q *qemuIO) stop() {
	q.stdin.Close()
	select {
	case <-q.done:
	case <-time.After(30 * time.Second):
		_ = q.cmd.Process.Kill()
		<-q.done
	}
}

// kill ends a qemu-io that cannot log out (its session is gone and its
// reconnection refused).
func (q *qemuIO) kill() {
	_ = q.cmd.Process.Kill()
	<-q.done
}

// waitInitiators waits until ListVolumeInitiators reports want.
func waitInitiators(t *testing.T, ctx context.Context, c sdkClients, volumeARN string, want []string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := c.sgw.ListVolumeInitiators(ctx, &storagegateway.ListVolumeInitiatorsInput{VolumeARN: aws.String(volumeARN)})
		if err != nil {
			t.Fatalf("ListVolumeInitiators: %v", err)
		}
		if slices.Equal(out.Initiators, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ListVolumeInitiators = %q, want %q", out.Initiators, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDeleteVolumeWithSessionOpen: a libiscsi initiator (qemu-io) holding
// a session on a volume that DeleteVolume removes is not left reconnecting
// for ever: its next I/O fails, and a new login is told the target was
// removed.
func TestDeleteVolumeWithSessionOpen(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	v := createAPIVolume(t, ctx, c, g, "held-volume", 1<<30)

	const holder = "iqn.2026-11.test:delete-holder"
	q := startQemuIO(t, v, holder, "")
	q.ok("write -P 0x5a 0 64k")
	waitInitiators(t, ctx, c, v.arn, []string{holder})

	if _, err := c.sgw.DeleteVolume(ctx, &storagegateway.DeleteVolumeInput{VolumeARN: aws.String(v.arn)}); err != nil {
		t.Fatal(err)
	}
	q.fails("read -P 0x5a 0 64k")
	q.stop()

	out, err := runTool(t, os.Environ(), time.Minute, "iscsi-inq", v.url())
	if err == nil || !strings.Contains(out, "Target removed") {
		t.Fatalf("login to the deleted volume's target: %v\n%s", err, out)
	}
}

// TestChapChangeClosesSessions: UpdateChapCredentials and
// DeleteChapCredentials close the target's sessions (AWS: "all existing
// connections on the target are closed and initiators must reconnect"),
// and logging in again needs the credentials now in force.
func TestChapChangeClosesSessions(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	v := createAPIVolume(t, ctx, c, g, "chap-volume", 1<<30)
	const initiator, secret = "iqn.2026-11.test:chap-host", "chap-secret-5678"

	// Logged in without CHAP, then CHAP turned on: the session is closed,
	// and the initiator, reconnecting without a secret, stays out.
	q := startQemuIO(t, v, initiator, "")
	q.ok("write -P 0x33 0 4k")
	waitInitiators(t, ctx, c, v.arn, []string{initiator})
	if _, err := c.sgw.UpdateChapCredentials(ctx, &storagegateway.UpdateChapCredentialsInput{TargetARN: aws.String(v.targetARN),
		InitiatorName: aws.String(initiator), SecretToAuthenticateInitiator: aws.String(secret)}); err != nil {
		t.Fatal(err)
	}
	waitInitiators(t, ctx, c, v.arn, nil)
	q.kill() // it retries its login for ever, and would not quit
	if out, err := runTool(t, os.Environ(), time.Minute, "iscsi-inq", "-i", initiator, v.url()); err == nil {
		t.Fatalf("login without CHAP accepted after UpdateChapCredentials:\n%s", out)
	}

	// Logged in with the secret, then the secret changed: closed again,
	// and only the new secret logs in.
	q = startQemuIO(t, v, initiator, secret)
	q.ok("read -P 0x33 0 4k")
	waitInitiators(t, ctx, c, v.arn, []string{initiator})
	const secret2 = "chap-secret-9999"
	if _, err := c.sgw.UpdateChapCredentials(ctx, &storagegateway.UpdateChapCredentialsInput{TargetARN: aws.String(v.targetARN),
		InitiatorName: aws.String(initiator), SecretToAuthenticateInitiator: aws.String(secret2)}); err != nil {
		t.Fatal(err)
	}
	waitInitiators(t, ctx, c, v.arn, nil)
	q.kill() // it retries its login for ever, and would not quit
	withSecret := func(sec string) string {
		return "iscsi://" + initiator + "%" + sec + "@" + v.portal + "/" + v.iqn + "/" + strconv.Itoa(v.lun)
	}
	if out, err := runTool(t, os.Environ(), time.Minute, "iscsi-inq", "-i", initiator, withSecret(secret)); err == nil {
		t.Fatalf("login with the old secret accepted:\n%s", out)
	}
	if out, err := runTool(t, os.Environ(), time.Minute, "iscsi-inq", "-i", initiator, withSecret(secret2)); err != nil {
		t.Fatalf("login with the new secret refused: %v\n%s", err, out)
	}

	// DeleteChapCredentials closes the sessions too. With another
	// initiator's credentials still configured, the target still demands
	// CHAP, and the deleted initiator can no longer log in at all.
	const other, otherSecret = "iqn.2026-11.test:chap-other", "chap-secret-0000"
	if _, err := c.sgw.UpdateChapCredentials(ctx, &storagegateway.UpdateChapCredentialsInput{TargetARN: aws.String(v.targetARN),
		InitiatorName: aws.String(other), SecretToAuthenticateInitiator: aws.String(otherSecret)}); err != nil {
		t.Fatal(err)
	}
	q = startQemuIO(t, v, initiator, secret2)
	q.ok("read -P 0x33 0 4k")
	waitInitiators(t, ctx, c, v.arn, []string{initiator})
	if _, err := c.sgw.DeleteChapCredentials(ctx, &storagegateway.DeleteChapCredentialsInput{TargetARN: aws.String(v.targetARN),
		InitiatorName: aws.String(initiator)}); err != nil {
		t.Fatal(err)
	}
	waitInitiators(t, ctx, c, v.arn, nil)
	q.kill()
	if out, err := runTool(t, os.Environ(), time.Minute, "iscsi-inq", "-i", initiator, withSecret(secret2)); err == nil {
		t.Fatalf("login with deleted CHAP credentials accepted:\n%s", out)
	}
	withOther := "iscsi://" + other + "%" + otherSecret + "@" + v.portal + "/" + v.iqn + "/" + strconv.Itoa(v.lun)
	if out, err := runTool(t, os.Environ(), time.Minute, "iscsi-inq", "-i", other, withOther); err != nil {
		t.Fatalf("login with the remaining CHAP credentials refused: %v\n%s", err, out)
	}
}

// TestShutdownGatewayWithSessionOpen: while the gateway is shut down, an
// initiator's I/O fails rather than hanging; once it is started again,
// the same initiator, without being restarted, reads its data back.
func TestShutdownGatewayWithSessionOpen(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	v := createAPIVolume(t, ctx, c, g, "shutdown-volume", 1<<30)

	q := startQemuIO(t, v, "iqn.2026-11.test:shutdown-holder", "")
	q.ok("write -P 0x6b 0 64k")
	if _, err := c.sgw.ShutdownGateway(ctx, &storagegateway.ShutdownGatewayInput{GatewayARN: aws.String(g.arn)}); err != nil {
		t.Fatal(err)
	}
	q.fails("read -P 0x6b 0 64k")
	if _, err := c.sgw.StartGateway(ctx, &storagegateway.StartGatewayInput{GatewayARN: aws.String(g.arn)}); err != nil {
		t.Fatal(err)
	}
	q.ok("read -P 0x6b 0 64k")
}
