package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/scsi"
)

// testParts are the parts the end-to-end tests run volgw with: the
// production engine and iSCSI target; while this build has no iSCSI target
// wired in, recordingExporter below stands in for it.
func testParts() parts {
	p := productionParts
	if p.newExporter == nil {
		p.newExporter = newRecordingExporter
	}
	if p.openEngine == nil {
		p.openEngine = openStoreEngine
	}
	return p
}

// storeEngine stands in for internal/volume in the API tests until the
// real engine is wired into productionParts: it keeps no data, only what
// the API shows — volumes' sizes and creation time (a new, empty volume is
// fully uploaded at creation, so that is its recovery point) and snapshot
// records, which it keeps in the object store as the engine does, so they
// survive a restart.
type storeEngine struct {
	store blob.Store
	now   func() time.Time

	mu      sync.Mutex // guards volumes
	volumes map[string]control.RecoveryPoint
}

func openStoreEngine(ctx context.Context, dataDir string, store blob.Store, log *slog.Logger) (openedEngine, error) {
	e := &storeEngine{store: store, now: time.Now, volumes: map[string]control.RecoveryPoint{}}
	var vols map[string]control.RecoveryPoint
	if err := e.getJSON(ctx, "test-engine/volumes.json", &vols); err != nil && !errors.Is(err, blob.ErrNotFound) {
		return openedEngine{}, err
	}
	for k, v := range vols {
		e.volumes[k] = v
	}
	return openedEngine{Engine: e, Volumes: func(string) (scsi.Backend, error) { return nil, errors.New("no data path in the API tests") },
		Close: func() error { return nil }}, nil
}

func (e *storeEngine) getJSON(ctx context.Context, key string, v any) error {
	b, err := e.store.Get(ctx, key)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func (e *storeEngine) putJSON(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = e.store.Put(ctx, key, b, blob.PutOptions{})
	return err
}

func (e *storeEngine) saveVolumes(ctx context.Context) error {
	return e.putJSON(ctx, "test-engine/volumes.json", e.volumes)
}

func (e *storeEngine) AddDisk(ctx context.Context, d control.Disk) error { return nil }

func (e *storeEngine) CreateVolume(ctx context.Context, spec control.VolumeSpec) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.volumes[spec.VolumeID] = control.RecoveryPoint{Time: e.now().UTC().Truncate(time.Millisecond), SizeBytes: spec.SizeBytes}
	return e.saveVolumes(ctx)
}

func (e *storeEngine) DeleteVolume(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.volumes[id]; !ok {
		return fmt.Errorf("%s: %w", id, control.ErrVolumeNotFound)
	}
	delete(e.volumes, id)
	return e.saveVolumes(ctx)
}

func (e *storeEngine) RecoveryPoint(ctx context.Context, id string) (control.RecoveryPoint, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	rp, ok := e.volumes[id]
	if !ok {
		return rp, fmt.Errorf("%s: %w", id, control.ErrVolumeNotFound)
	}
	return rp, nil
}

func (e *storeEngine) CreateSnapshot(ctx context.Context, req control.SnapshotRequest) (control.Snapshot, error) {
	rp, err := e.RecoveryPoint(ctx, req.VolumeID)
	if err != nil {
		return control.Snapshot{}, err
	}
	s := control.Snapshot{ID: req.SnapshotID, VolumeID: req.VolumeID, VolumeARN: req.VolumeARN, VolumeSizeBytes: rp.SizeBytes,
		StartTime: rp.Time, Description: req.Description, Tags: req.Tags, Status: control.SnapshotCompleted, Progress: 100}
	return s, e.putJSON(ctx, "snapshots/"+s.ID+".json", s)
}

func (e *storeEngine) Snapshots(ctx context.Context) ([]control.Snapshot, error) {
	var out []control.Snapshot
	err := e.store.List(ctx, "snapshots/", func(info blob.ObjectInfo) error {
		var s control.Snapshot
		if err := e.getJSON(ctx, info.Key, &s); err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (e *storeEngine) Snapshot(ctx context.Context, id string) (control.Snapshot, error) {
	var s control.Snapshot
	err := e.getJSON(ctx, "snapshots/"+id+".json", &s)
	if errors.Is(err, blob.ErrNotFound) {
		return s, fmt.Errorf("%s: %w", id, control.ErrSnapshotNotFound)
	}
	return s, err
}

func (e *storeEngine) SetSnapshotTags(ctx context.Context, id string, tags []control.Tag) error {
	s, err := e.Snapshot(ctx, id)
	if err != nil {
		return err
	}
	s.Tags = tags
	return e.putJSON(ctx, "snapshots/"+id+".json", s)
}

func (e *storeEngine) DeleteSnapshot(ctx context.Context, id string) error {
	if _, err := e.Snapshot(ctx, id); err != nil {
		return err
	}
	return e.store.Delete(ctx, "snapshots/"+id+".json")
}

// recordingExporter stands in for the iSCSI target in the API tests until
// the real one is wired into productionParts: it remembers what is
// exported, which is all the API can observe.
type recordingExporter struct {
	mu       sync.Mutex // guards exported
	exported map[string]control.ExportSpec
}

func newRecordingExporter(ctx context.Context, ln net.Listener, volumes func(string) (scsi.Backend, error), log *slog.Logger) (exporter, error) {
	return &recordingExporter{exported: map[string]control.ExportSpec{}}, nil
}

func (r *recordingExporter) Export(ctx context.Context, spec control.ExportSpec) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exported[spec.IQN] = spec
	return nil
}

func (r *recordingExporter) Unexport(ctx context.Context, iqn string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.exported, iqn)
	return nil
}

func (r *recordingExporter) Initiators(iqn string) []string { return nil }
func (r *recordingExporter) Close() error                   { return nil }

// Credentials every test server accepts.
const (
	e2eKeyID  = "AKIAVOLGWE2ETEST0001"
	e2eSecret = "volgw/e2e/secret/key/0123456789abcdefghij"
)

// testServer is a volgw serve running in-process on 127.0.0.1:0.
type testServer struct {
	*app
	dataDir string
	out     *bytes.Buffer
}

func (s *testServer) endpoint() string { return "http://" + s.APIAddr() }

// startServer starts volgw serve on dataDir (a new temporary one when
// ""), with the e2e credentials, and stops it at the end of the test.
func startServer(t *testing.T, dataDir string) *testServer {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	var out bytes.Buffer
	opts, err := parseServeFlags([]string{"--listen", "127.0.0.1:0", "--iscsi-listen", "127.0.0.1:0", "--data-dir", dataDir,
		"--cache-disk-size", "2GiB", "--upload-buffer-disk-size", "1GiB", "--log-level", "warn"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"VOLGW_ACCESS_KEY_ID": e2eKeyID, "VOLGW_SECRET_ACCESS_KEY": e2eSecret}
	a, err := start(context.Background(), opts, &out, func(k string) string { return env[k] }, testParts())
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{app: a, dataDir: dataDir, out: &out}
	t.Cleanup(func() {
		if err := a.close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// runTool runs a client (CLI, python) with env, bounded in time, and
// returns its combined output.
func runTool(t *testing.T, env []string, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// runToolInput is runTool with stdin; it returns stdout only.
func runToolInput(t *testing.T, env []string, timeout time.Duration, stdin []byte, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func xmlUnmarshal(b []byte, v any) error { return xml.Unmarshal(b, v) }
