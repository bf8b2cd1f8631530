package volume

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob/fs"
	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/scsi"
)

// The fault tests damage the upload buffer the way a user or a failing disk
// does, after a real SIGKILL of a re-executed child that wrote and flushed
// data it had not yet uploaded:
//
//	the child: create the volume, write A (2 MiB), cut (the recovery point
//	is A), write B (8 MiB over A), Flush (acknowledged), tell the parent,
//	wait to be killed;
//	the parent: SIGKILL, damage a file, Open, and check what the user sees.

const (
	faultVolume = "vol-0000000000000FA17"
	// otherVolume has everything it was written in its recovery point when
	// the child is killed: no damage to the upload buffer concerns it.
	otherVolume = "vol-00000000000000071"
	faultA      = 2 << 20
	faultB      = 8 << 20
)

type faultEnv struct {
	Dir   string // engine state dir and disks
	Store string // fs store directory
	// After, if set: after the flush, cut, then write C (1 MiB) without a
	// flush; the ledger then names only covered records.
	After bool
	// NoFlush, if set: B is written but never flushed (as qemu-img convert
	// does by default) before the kill.
	NoFlush bool
}

func (f faultEnv) config(log *slog.Logger) Config {
	s, err := fs.New(f.Store)
	if err != nil {
		panic(err)
	}
	return Config{Dir: filepath.Join(f.Dir, "engine"), Store: s, CutInterval: -1, Logger: log}
}

func (f faultEnv) disks() []control.Disk {
	return []control.Disk{
		{ID: "cache0", Path: filepath.Join(f.Dir, "cache0.img"), SizeBytes: 64 << 20, Use: control.DiskUseCache},
		{ID: "buf0", Path: filepath.Join(f.Dir, "buffer0.img"), SizeBytes: 32 << 20, Use: control.DiskUseUploadBuffer},
	}
}

func (f faultEnv) journalJSON() string { return filepath.Join(f.Dir, "engine", "journal.json") }
func (f faultEnv) buffer() string      { return filepath.Join(f.Dir, "buffer0.img") }

func faultData(seed byte, n int) []byte { return pattern(seed, n) }

// TestFaultChild is the child side; it only runs when re-executed.
func TestFaultChild(t *testing.T) {
	envJSON := os.Getenv("VOLGW_FAULT_CHILD")
	if envJSON == "" {
		t.Skip("runs only as a fault test's child")
	}
	var f faultEnv
	if err := json.Unmarshal([]byte(envJSON), &f); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e, err := Open(ctx, f.config(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.disks() {
		if err := e.AddDisk(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: faultVolume, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: otherVolume, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	ov, err := e.Volume(otherVolume)
	if err != nil {
		t.Fatal(err)
	}
	if err := ov.WriteAt(ctx, faultData(7, faultA), 0); err != nil {
		t.Fatal(err)
	}
	if err := ov.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Cut(ctx, otherVolume); err != nil {
		t.Fatal(err)
	}
	v, err := e.Volume(faultVolume)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.WriteAt(ctx, faultData(1, faultA), 0); err != nil {
		t.Fatal(err)
	}
	if err := e.Cut(ctx, faultVolume); err != nil {
		t.Fatal(err)
	}
	if err := v.WriteAt(ctx, faultData(2, faultB), 0); err != nil {
		t.Fatal(err)
	}
	if !f.NoFlush {
		if err := v.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if f.After {
		if err := e.Cut(ctx, faultVolume); err != nil {
			t.Fatal(err)
		}
		if err := v.WriteAt(ctx, faultData(3, 1<<20), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeFileAtomic(filepath.Join(f.Dir, "ready"), []byte("ready")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Minute) // killed long before
	t.Fatal("not killed")
}

// killedChild runs the child until it has flushed, then kills it with
// SIGKILL: nothing after the flush is cut or cleaned up.
func killedChild(t *testing.T, f faultEnv) {
	t.Helper()
	env, _ := json.Marshal(f)
	cmd := exec.Command(os.Args[0], "-test.run=^TestFaultChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "VOLGW_FAULT_CHILD="+string(env))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	deadline := time.After(2 * time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(f.Dir, "ready")); err == nil {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("child exited before it was ready: %v\n%s", err, out.Bytes())
		case <-deadline:
			t.Fatalf("child not ready after 2 minutes:\n%s", out.Bytes())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
}

// lockedBuffer collects the engine's log; the uploader logs concurrently.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// faultOpen opens the engine after the crash as volgw serve would: Open,
// then AddDisk with the same disks.
// damagedOpen runs the child until it is killed, damages its files, opens
// the engine again and checks what every damaged start must show: the
// fault volume in status want, an ERROR naming it and file, and a recovery
// point from before the kill.
func damagedOpen(t *testing.T, f faultEnv, damage func(faultEnv), want, file string) (*Engine, *lockedBuffer) {
	t.Helper()
	killedChild(t, f)
	killed := time.Now()
	damage(f)
	e, logs := faultOpen(t, f)
	checkRecoveryPointBefore(t, e, killed)
	if st := volumeStatus(t, e, faultVolume); st.Status != want {
		t.Fatalf("status %q (%s), want %s; log:\n%s", st.Status, st.Reason, want, logs)
	}
	t.Logf("%s", errorLineNaming(t, logs, faultVolume, file))
	return e, logs
}

// checkRecoveryPointBefore fails the test unless the fault volume's
// recovery point is before t: writes acknowledged before the kill were
// lost with the upload buffer, so no later instant is a recovery point.
func checkRecoveryPointBefore(t *testing.T, e *Engine, killed time.Time) {
	t.Helper()
	// The uploader's idle pass must not move it either.
	if err := e.Cut(context.Background(), faultVolume); err != nil && !errors.Is(err, control.ErrVolumeNotReady) {
		t.Fatal(err)
	}
	rp, err := e.RecoveryPoint(context.Background(), faultVolume)
	if err != nil {
		t.Fatal(err)
	}
	if !rp.Time.Before(killed) {
		t.Fatalf("recovery point %s is after the kill at %s, but writes acknowledged before the kill are lost", rp.Time, killed)
	}
}

// errorLineNaming returns the last ERROR line of logs that names volume,
// and fails the test unless there is one that also names file.
func errorLineNaming(t *testing.T, logs *lockedBuffer, volume, file string) string {
	t.Helper()
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=ERROR") && strings.Contains(l, volume) {
			line = l
		}
	}
	if line == "" || !strings.Contains(line, file) {
		t.Fatalf("no ERROR naming %s and %s; log:\n%s", volume, file, logs)
	}
	return line
}

func faultOpen(t *testing.T, f faultEnv) (*Engine, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	e, err := Open(context.Background(), f.config(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatalf("Open after the fault: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	for _, d := range f.disks() {
		if err := e.AddDisk(context.Background(), d); err != nil {
			t.Fatalf("AddDisk after the fault: %v", err)
		}
	}
	return e, logs
}

func volumeStatus(t *testing.T, e *Engine, id string) control.VolumeCondition {
	t.Helper()
	c, err := e.VolumeStatus(context.Background(), id)
	if err != nil {
		t.Fatalf("VolumeStatus(%s): %v", id, err)
	}
	return c
}

// damageMetric reads volgw_volume_upload_buffer_damage_total{status} off
// the engine's collector, as /metrics would.
func damageMetric(t *testing.T, e *Engine, status string) float64 {
	t.Helper()
	for _, m := range gather(t, e)["volgw_volume_upload_buffer_damage_total"] {
		for _, l := range m.GetLabel() {
			if l.GetName() == "status" && l.GetValue() == status {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no volgw_volume_upload_buffer_damage_total{status=%q}", status)
	return 0
}

// recoveryPointBytes is what the volume held at its recovery point: A,
// then zeros.
func recoveryPointBytes() []byte {
	want := make([]byte, faultB)
	copy(want, faultData(1, faultA))
	return want
}

// TestFaultUploadBufferLost: each way of losing the upload buffer after a
// flush makes the volume IRRECOVERABLE at the next start (never a failed
// Open, never silence): an ERROR names the file and the volume, the damage
// metric counts it, the volume serves its recovery point and refuses
// writes, and a restart remembers it.
func TestFaultUploadBufferLost(t *testing.T) {
	garbage := func(path string, n int) {
		p := make([]byte, n)
		r := rand.New(rand.NewPCG(7, 7))
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		if err := os.WriteFile(path, p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		file   string // what the ERROR must name
		damage func(f faultEnv)
	}{
		{"journal.json deleted", "journal.json", func(f faultEnv) { must(t, os.Remove(f.journalJSON())) }},
		{"journal.json emptied", "journal.json", func(f faultEnv) { must(t, os.WriteFile(f.journalJSON(), nil, 0o600)) }},
		{"journal.json corrupted", "journal.json", func(f faultEnv) { garbage(f.journalJSON(), 300) }},
		// Valid, but not the ring the engine wrote: a re-created superblock
		// (an old backup, or one written by hand) starting at LSN 0.
		{"journal.json re-created", "journal.json", func(f faultEnv) {
			must(t, os.WriteFile(f.journalJSON(), []byte(`{"epoch":1,"baseLSN":0,"tailLSN":0,"disks":[]}`), 0o600))
		}},
		{"buffer0.img truncated", "buffer0.img", func(f faultEnv) { must(t, os.Truncate(f.buffer(), 1<<20)) }},
		{"buffer0.img deleted", "buffer0.img", func(f faultEnv) { must(t, os.Remove(f.buffer())) }},
		{"buffer0.img overwritten", "buffer0.img", func(f faultEnv) { garbage(f.buffer(), 32<<20) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := faultEnv{Dir: t.TempDir(), Store: t.TempDir()}
			e, logs := damagedOpen(t, f, tc.damage, control.VolumeIrrecoverable, tc.file)
			if got := damageMetric(t, e, control.VolumeIrrecoverable); got != 1 {
				t.Fatalf("damage metric %v, want 1", got)
			}
			v, err := e.Volume(faultVolume)
			if err != nil {
				t.Fatal(err)
			}
			if got := mustRead(t, v, 0, faultB); !bytes.Equal(got, recoveryPointBytes()) {
				t.Fatalf("the volume does not serve its recovery point (first difference at %d)", firstDiff(got, recoveryPointBytes()))
			}
			if err := v.WriteAt(ctx, faultData(9, 4096), 0); !errors.Is(err, control.ErrVolumeNotReady) || !errors.Is(err, scsi.ErrReadOnly) {
				t.Fatalf("write to an IRRECOVERABLE volume: %v, want VolumeNotReady (write-protected to SCSI)", err)
			}
			if _, err := e.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-now", VolumeID: faultVolume}); !errors.Is(err, control.ErrVolumeNotReady) {
				t.Fatalf("snapshot of an IRRECOVERABLE volume as it is now: %v, want VolumeNotReady", err)
			}
			// The other volume needed nothing from the upload buffer: it is
			// untouched, and works.
			if st := volumeStatus(t, e, otherVolume); st.Status != control.VolumeAvailable {
				t.Fatalf("the other volume is %q (%s)", st.Status, st.Reason)
			}
			ov, _ := e.Volume(otherVolume)
			if got := mustRead(t, ov, 0, faultA); !bytes.Equal(got, faultData(7, faultA)) {
				t.Fatal("the other volume lost data")
			}
			if err := ov.WriteAt(ctx, faultData(8, 4096), 0); err != nil {
				t.Fatalf("write to the other volume: %v", err)
			}
			if err := ov.Flush(ctx); err != nil {
				t.Fatal(err)
			}

			// A restart (clean or not) does not forget it, and does not
			// count it again.
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			e, logs = faultOpen(t, f)
			if st := volumeStatus(t, e, faultVolume); st.Status != control.VolumeIrrecoverable {
				t.Fatalf("after a restart: status %q", st.Status)
			}
			if !strings.Contains(logs.String(), "level=ERROR msg=\"volume: still IRRECOVERABLE\" volume="+faultVolume) {
				t.Fatalf("a restart does not say the volume is still IRRECOVERABLE; log:\n%s", logs)
			}
			if got := damageMetric(t, e, control.VolumeIrrecoverable); got != 0 {
				t.Fatalf("after a restart the damage was counted again: %v", got)
			}
			v, _ = e.Volume(faultVolume)
			if got := mustRead(t, v, 0, faultB); !bytes.Equal(got, recoveryPointBytes()) {
				t.Fatal("after a restart the volume does not serve its recovery point")
			}
			// The other volume's write went into the ring started afresh
			// (above every LSN used before): it replays.
			ov, _ = e.Volume(otherVolume)
			if got := mustRead(t, ov, 0, 4096); !bytes.Equal(got, faultData(8, 4096)) {
				t.Fatal("a write flushed after the damage was lost at the next restart")
			}
		})
	}
}

// TestFaultUnflushedWritesLost: writes acknowledged but never flushed (the
// initiator did not ask) survive a SIGKILL in the upload buffer; if the
// upload buffer is then damaged they are lost, and the volume must say so
// (PASS THROUGH, an ERROR naming the file, the metric) instead of being
// silently AVAILABLE without them.
func TestFaultUnflushedWritesLost(t *testing.T) {
	cases := []struct {
		name, file string
		damage     func(f faultEnv)
	}{
		{"journal.json deleted", "journal.json", func(f faultEnv) { must(t, os.Remove(f.journalJSON())) }},
		{"buffer0.img deleted", "buffer0.img", func(f faultEnv) { must(t, os.Remove(f.buffer())) }},
		{"buffer0.img truncated", "buffer0.img", func(f faultEnv) { must(t, os.Truncate(f.buffer(), 1<<20)) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := faultEnv{Dir: t.TempDir(), Store: t.TempDir(), NoFlush: true}
			e, _ := damagedOpen(t, f, tc.damage, control.VolumePassThrough, tc.file)
			if got := damageMetric(t, e, control.VolumePassThrough); got != 1 {
				t.Fatalf("damage metric %v, want 1", got)
			}
			if st := volumeStatus(t, e, otherVolume); st.Status != control.VolumeAvailable {
				t.Fatalf("the other volume is %q (%s)", st.Status, st.Reason)
			}
		})
	}
	// Undamaged, the same unflushed writes are all there after the kill.
	t.Run("intact", func(t *testing.T) {
		f := faultEnv{Dir: t.TempDir(), Store: t.TempDir(), NoFlush: true}
		killedChild(t, f)
		e, logs := faultOpen(t, f)
		if st := volumeStatus(t, e, faultVolume); st.Status == control.VolumePassThrough || st.Status == control.VolumeIrrecoverable {
			t.Fatalf("status %q (%s) with the upload buffer intact; log:\n%s", st.Status, st.Reason, logs)
		}
		v, err := e.Volume(faultVolume)
		if err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, v, 0, faultB); !bytes.Equal(got, faultData(2, faultB)) {
			t.Fatalf("an acknowledged, unflushed write was lost across a SIGKILL (first difference at %d)", firstDiff(got, faultData(2, faultB)))
		}
	})
}

// TestFaultLostAndRecovered: the documented way back from IRRECOVERABLE
// works: a snapshot from the recovery point, a new volume from it that
// reads the recovery point's bytes and takes writes, and the damaged
// volume deleted; after a restart only the new volume is there, AVAILABLE.
func TestFaultLostAndRecovered(t *testing.T) {
	ctx := context.Background()
	f := faultEnv{Dir: t.TempDir(), Store: t.TempDir()}
	killedChild(t, f)
	must(t, os.Remove(f.buffer()))
	e, _ := faultOpen(t, f)
	if st := volumeStatus(t, e, faultVolume); st.Status != control.VolumeIrrecoverable {
		t.Fatalf("status %q", st.Status)
	}
	snap, err := e.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-way-back", VolumeID: faultVolume, FromRecoveryPoint: true})
	if err != nil {
		t.Fatalf("snapshot from the recovery point: %v", err)
	}
	if snap.Status != control.SnapshotCompleted {
		t.Fatalf("snapshot %s", snap.Status)
	}
	const restored = "vol-00000000000000BAC"
	if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: restored, SizeBytes: gib, Source: control.VolumeSource{SnapshotID: snap.ID}}); err != nil {
		t.Fatalf("volume from the snapshot: %v", err)
	}
	nv, _ := e.Volume(restored)
	if got := mustRead(t, nv, 0, faultB); !bytes.Equal(got, recoveryPointBytes()) {
		t.Fatalf("the new volume does not hold the recovery point (first difference at %d)", firstDiff(got, recoveryPointBytes()))
	}
	if err := nv.WriteAt(ctx, faultData(5, 4096), 0); err != nil {
		t.Fatalf("write to the new volume: %v", err)
	}
	if err := nv.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// The other way back: a clone of the damaged volume's recovery point.
	const clone = "vol-00000000000000C10"
	if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: clone, SizeBytes: gib, Source: control.VolumeSource{SourceVolumeID: faultVolume}}); err != nil {
		t.Fatalf("clone of the damaged volume: %v", err)
	}
	cv, _ := e.Volume(clone)
	if got := mustRead(t, cv, 0, faultB); !bytes.Equal(got, recoveryPointBytes()) {
		t.Fatalf("the clone does not hold the recovery point (first difference at %d)", firstDiff(got, recoveryPointBytes()))
	}
	if err := e.DeleteVolume(ctx, clone); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteVolume(ctx, faultVolume); err != nil {
		t.Fatalf("delete the damaged volume: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e, _ = faultOpen(t, f)
	if _, err := e.Volume(faultVolume); !errors.Is(err, control.ErrVolumeNotFound) {
		t.Fatalf("damaged volume after delete and restart: %v", err)
	}
	if st := volumeStatus(t, e, restored); st.Status != control.VolumeAvailable {
		t.Fatalf("new volume %q (%s)", st.Status, st.Reason)
	}
	nv, _ = e.Volume(restored)
	want := recoveryPointBytes()
	copy(want, faultData(5, 4096))
	if got := mustRead(t, nv, 0, faultB); !bytes.Equal(got, want) {
		t.Fatalf("new volume after restart (first difference at %d)", firstDiff(got, want))
	}
}

// TestFaultPassThrough: the journal is damaged, but everything a flush
// acknowledged was already cut; only a write no flush acknowledged is
// gone. The volume is PASS THROUGH (loss possible, not known), keeps
// working on its recovery point, and is AVAILABLE again once a cut made
// after the damage is published.
func TestFaultPassThrough(t *testing.T) {
	ctx := context.Background()
	f := faultEnv{Dir: t.TempDir(), Store: t.TempDir(), After: true}
	killedChild(t, f)
	must(t, os.Remove(f.journalJSON()))
	e, logs := faultOpen(t, f)
	st := volumeStatus(t, e, faultVolume)
	if st.Status != control.VolumePassThrough {
		t.Fatalf("status %q (%s); log:\n%s", st.Status, st.Reason, logs)
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("no ERROR; log:\n%s", logs)
	}
	if got := damageMetric(t, e, control.VolumePassThrough); got != 1 {
		t.Fatalf("damage metric %v", got)
	}
	v, _ := e.Volume(faultVolume)
	if got := mustRead(t, v, 0, faultB); !bytes.Equal(got, faultData(2, faultB)) {
		t.Fatal("the volume does not serve its recovery point (B)")
	}
	if err := v.WriteAt(ctx, faultData(6, 4096), 0); err != nil {
		t.Fatalf("write to a PASS THROUGH volume: %v", err)
	}
	if err := e.Cut(ctx, faultVolume); err != nil {
		t.Fatal(err)
	}
	if st := volumeStatus(t, e, faultVolume); st.Status != control.VolumeAvailable {
		t.Fatalf("after a cut: %q (%s)", st.Status, st.Reason)
	}
}

// TestFaultUncleanStopBootstraps: with the upload buffer intact, a SIGKILL
// loses nothing; the volume is BOOTSTRAPPING (with a progress) until what
// was replayed is uploaded, then AVAILABLE, and no damage is reported.
func TestFaultUncleanStopBootstraps(t *testing.T) {
	ctx := context.Background()
	f := faultEnv{Dir: t.TempDir(), Store: t.TempDir()}
	killedChild(t, f)
	e, logs := faultOpen(t, f)
	st := volumeStatus(t, e, faultVolume)
	if st.Status != control.VolumeBootstrapping || st.Progress == nil {
		t.Fatalf("status %q progress %v (%s)", st.Status, st.Progress, st.Reason)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("ERROR after a clean recovery:\n%s", logs)
	}
	v, _ := e.Volume(faultVolume)
	if got := mustRead(t, v, 0, faultB); !bytes.Equal(got, faultData(2, faultB)) {
		t.Fatal("flushed data lost")
	}
	if err := e.Cut(ctx, faultVolume); err != nil {
		t.Fatal(err)
	}
	if st := volumeStatus(t, e, faultVolume); st.Status != control.VolumeAvailable {
		t.Fatalf("after the cut: %q (%s)", st.Status, st.Reason)
	}
	if got := damageMetric(t, e, control.VolumeIrrecoverable) + damageMetric(t, e, control.VolumePassThrough); got != 0 {
		t.Fatalf("damage counted: %v", got)
	}
	// A clean stop is not bootstrapping.
	if err := v.WriteAt(ctx, faultData(4, 4096), 0); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e, _ = faultOpen(t, f)
	if st := volumeStatus(t, e, faultVolume); st.Status != control.VolumeAvailable {
		t.Fatalf("after a clean stop: %q (%s)", st.Status, st.Reason)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestFaultLedgerLost: the ledger is what detects a lost upload buffer, so
// losing it is reported too. Alone, it loses nothing (the journal replays);
// with the journal's superblock, what the journal held is unknown and
// every volume is PASS THROUGH.
func TestFaultLedgerLost(t *testing.T) {
	ledger := func(f faultEnv) string { return filepath.Join(f.Dir, "engine", "ledger.json") }
	t.Run("ledger.json corrupted", func(t *testing.T) {
		f := faultEnv{Dir: t.TempDir(), Store: t.TempDir()}
		killedChild(t, f)
		must(t, os.WriteFile(ledger(f), []byte("{not json"), 0o600))
		e, logs := faultOpen(t, f)
		if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "ledger.json") {
			t.Fatalf("no ERROR naming ledger.json; log:\n%s", logs)
		}
		v, _ := e.Volume(faultVolume)
		if got := mustRead(t, v, 0, faultB); !bytes.Equal(got, faultData(2, faultB)) {
			t.Fatal("flushed data lost")
		}
		for _, id := range []string{faultVolume, otherVolume} {
			if st := volumeStatus(t, e, id); st.Status == control.VolumeIrrecoverable || st.Status == control.VolumePassThrough {
				t.Fatalf("%s is %q", id, st.Status)
			}
		}
	})
	t.Run("ledger.json and journal.json deleted", func(t *testing.T) {
		ctx := context.Background()
		f := faultEnv{Dir: t.TempDir(), Store: t.TempDir()}
		killedChild(t, f)
		must(t, os.Remove(ledger(f)))
		must(t, os.Remove(f.journalJSON()))
		e, logs := faultOpen(t, f)
		for _, id := range []string{faultVolume, otherVolume} {
			if st := volumeStatus(t, e, id); st.Status != control.VolumePassThrough {
				t.Fatalf("%s is %q (%s); log:\n%s", id, st.Status, st.Reason, logs)
			}
		}
		if got := damageMetric(t, e, control.VolumePassThrough); got != 2 {
			t.Fatalf("damage metric %v, want 2", got)
		}
		v, _ := e.Volume(faultVolume)
		if got := mustRead(t, v, 0, faultB); !bytes.Equal(got, recoveryPointBytes()) {
			t.Fatal("the volume does not serve its recovery point")
		}
		if err := v.WriteAt(ctx, faultData(6, 4096), 0); err != nil {
			t.Fatalf("write to a PASS THROUGH volume: %v", err)
		}
	})
}
