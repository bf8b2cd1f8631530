package control

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// memEngine is an in-memory VolumeEngine for the control plane's unit tests
// only: it keeps exactly what the seam promises (volumes with a recovery
// point, snapshots with tags) so that the control plane's rules can be
// checked without the block engine.
type memEngine struct {
	now func() time.Time

	mu        sync.Mutex // guards everything below
	disks     []Disk
	volumes   map[string]VolumeSpec
	created   map[string]time.Time
	snapshots map[string]Snapshot
}

func newMemEngine(now func() time.Time) *memEngine {
	return &memEngine{now: now, volumes: map[string]VolumeSpec{}, created: map[string]time.Time{}, snapshots: map[string]Snapshot{}}
}

func (e *memEngine) AddDisk(ctx context.Context, d Disk) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.disks = append(e.disks, d)
	return nil
}

func (e *memEngine) CreateVolume(ctx context.Context, spec VolumeSpec) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.volumes[spec.VolumeID]; ok {
		return fmt.Errorf("volume %s exists", spec.VolumeID)
	}
	if id := spec.Source.SnapshotID; id != "" {
		if _, ok := e.snapshots[id]; !ok {
			return ErrSnapshotNotFound
		}
	}
	if id := spec.Source.SourceVolumeID; id != "" {
		if _, ok := e.volumes[id]; !ok {
			return ErrVolumeNotFound
		}
	}
	e.volumes[spec.VolumeID] = spec
	e.created[spec.VolumeID] = e.now()
	return nil
}

func (e *memEngine) DeleteVolume(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.volumes[id]; !ok {
		return ErrVolumeNotFound
	}
	delete(e.volumes, id)
	return nil
}

// LocalVolumes implements VolumeLister.
func (e *memEngine) LocalVolumes(ctx context.Context) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for id := range e.volumes {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}

func (e *memEngine) RecoveryPoint(ctx context.Context, id string) (RecoveryPoint, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.volumes[id]
	if !ok {
		return RecoveryPoint{}, ErrVolumeNotFound
	}
	// An empty volume is fully uploaded as of its creation.
	return RecoveryPoint{Time: e.created[id], SizeBytes: v.SizeBytes}, nil
}

func (e *memEngine) CreateSnapshot(ctx context.Context, req SnapshotRequest) (Snapshot, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.volumes[req.VolumeID]
	if !ok {
		return Snapshot{}, ErrVolumeNotFound
	}
	s := Snapshot{
		ID: req.SnapshotID, VolumeID: req.VolumeID, VolumeARN: req.VolumeARN, VolumeSizeBytes: v.SizeBytes,
		StartTime: e.now(), RecoveryPointTime: e.created[req.VolumeID], Description: req.Description, Tags: req.Tags,
		Status: SnapshotCompleted, Progress: 100, KMSKey: v.KMSKey, // sealed with its volume's key
	}
	if !req.FromRecoveryPoint {
		s.RecoveryPointTime = s.StartTime
	}
	e.snapshots[s.ID] = s
	return s, nil
}

func (e *memEngine) Snapshots(ctx context.Context) ([]Snapshot, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Snapshot
	for _, s := range e.snapshots {
		out = append(out, s)
	}
	return out, nil
}

func (e *memEngine) Snapshot(ctx context.Context, id string) (Snapshot, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.snapshots[id]
	if !ok {
		return Snapshot{}, ErrSnapshotNotFound
	}
	return s, nil
}

// UpdateSnapshotTags implements SnapshotTagUpdater.
func (e *memEngine) UpdateSnapshotTags(ctx context.Context, id string, change func([]Tag) ([]Tag, error)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.snapshots[id]
	if !ok {
		return ErrSnapshotNotFound
	}
	tags, err := change(append([]Tag(nil), s.Tags...))
	if err != nil {
		return err
	}
	s.Tags = tags
	e.snapshots[id] = s
	return nil
}

func (e *memEngine) SetSnapshotTags(ctx context.Context, id string, tags []Tag) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.snapshots[id]
	if !ok {
		return ErrSnapshotNotFound
	}
	s.Tags = tags
	e.snapshots[id] = s
	return nil
}

func (e *memEngine) DeleteSnapshot(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.snapshots[id]; !ok {
		return ErrSnapshotNotFound
	}
	delete(e.snapshots, id)
	return nil
}

// memExporter records what is exported.
type memExporter struct {
	mu         sync.Mutex // guards targets and initiators
	targets    map[string]ExportSpec
	initiators map[string][]string
}

func newMemExporter() *memExporter {
	return &memExporter{targets: map[string]ExportSpec{}, initiators: map[string][]string{}}
}

func (x *memExporter) Export(ctx context.Context, spec ExportSpec) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.targets[spec.IQN] = spec
	return nil
}

func (x *memExporter) Unexport(ctx context.Context, iqn string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.targets, iqn)
	return nil
}

func (x *memExporter) Initiators(iqn string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.targets[iqn]; !ok {
		return nil
	}
	return x.initiators[iqn]
}

func (x *memExporter) iqns() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []string
	for iqn := range x.targets {
		out = append(out, iqn)
	}
	sort.Strings(out)
	return out
}

func (x *memExporter) spec(iqn string) (ExportSpec, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	s, ok := x.targets[iqn]
	return s, ok
}
