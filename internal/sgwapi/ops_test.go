package sgwapi

import (
	"encoding/json"
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/awsproto"
	"github.com/volgw/volgw/internal/control"
)

// cachedVolumeOps are the operations a cached volume gateway supports and
// volgw implements; every other operation of the model is in
// unsupportedOps.
var cachedVolumeOps = []string{
	"ActivateGateway", "AddCache", "AddTagsToResource", "AddUploadBuffer", "CreateCachediSCSIVolume",
	"CreateSnapshot", "CreateSnapshotFromVolumeRecoveryPoint", "DeleteChapCredentials", "DeleteGateway",
	"DeleteSnapshotSchedule", "DeleteVolume", "DescribeCache", "DescribeCachediSCSIVolumes",
	"DescribeChapCredentials", "DescribeGatewayInformation", "DescribeSnapshotSchedule", "DescribeUploadBuffer",
	"ListGateways", "ListLocalDisks", "ListTagsForResource", "ListVolumeInitiators", "ListVolumeRecoveryPoints",
	"ListVolumes", "RemoveTagsFromResource", "ShutdownGateway", "StartGateway", "UpdateChapCredentials",
	"UpdateGatewayInformation", "UpdateSnapshotSchedule",
	"AttachVolume", "DetachVolume",
	"ResetCache", "DescribeMaintenanceStartTime", "UpdateMaintenanceStartTime",
	"UpdateGatewaySoftwareNow", "DescribeAvailabilityMonitorTest", // software.go
	"DescribeBandwidthRateLimit", "UpdateBandwidthRateLimit", "DeleteBandwidthRateLimit", // bandwidth.go
	"DescribeBandwidthRateLimitSchedule", "UpdateBandwidthRateLimitSchedule",
}

// TestEveryModelOperationIsAnswered: every operation of the model is
// either implemented or in unsupportedOps, never both; what the
// unsupported ones answer is checked against a real gateway in
// unsupported_test.go.
func TestEveryModelOperationIsAnswered(t *testing.T) {
	model, err := LoadModel()
	if err != nil {
		t.Fatal(err)
	}
	names := model.OperationNames()
	if len(names) != 96 {
		t.Fatalf("model has %d operations, want 96", len(names))
	}
	api := New(nil)
	impl := api.Implemented()
	sort.Strings(impl)
	want := append([]string{}, cachedVolumeOps...)
	sort.Strings(want)
	if len(impl) != len(want) {
		t.Fatalf("implemented %v\nwant %v", impl, want)
	}
	for i := range want {
		if impl[i] != want[i] || !model.HasOperation(impl[i]) {
			t.Fatalf("implemented %v\nwant %v", impl, want)
		}
	}
	implemented := map[string]bool{}
	for _, op := range impl {
		implemented[op] = true
	}
	for _, op := range names {
		_, unsupported := unsupportedOps[op]
		if implemented[op] == unsupported {
			t.Errorf("%s: implemented %v, in unsupportedOps %v", op, implemented[op], unsupported)
		}
	}
	for op := range unsupportedOps {
		if !model.HasOperation(op) {
			t.Errorf("unsupportedOps has %s, which the model does not", op)
		}
	}
	if len(unsupportedOps) != 96-len(cachedVolumeOps) {
		t.Fatalf("%d unsupported operations", len(unsupportedOps))
	}
}

func TestAPIErrorCarriesCodeAndMessage(t *testing.T) {
	err := apiError(&control.Error{Code: control.CodeVolumeNotFound, Message: "The specified volume was not found."})
	var e *awsproto.Error
	if !errors.As(err, &e) || e.Type != "InvalidGatewayRequestException" || e.ErrorCode != "VolumeNotFound" ||
		e.Message != "The specified volume was not found." || e.Status != 400 {
		t.Fatalf("apiError = %#v", err)
	}
	plain := errors.New("disk on fire")
	if got := apiError(plain); got != plain {
		t.Fatalf("apiError(plain) = %v; want it passed through for awsproto's InternalServerError", got)
	}
}

func TestTimestampsAreEpochSeconds(t *testing.T) {
	out, err := json.Marshal(cachediSCSIVolume{CreatedDate: epochPtr(time.Date(2026, 11, 23, 10, 0, 0, 250e6, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if got := m["CreatedDate"]; got != 1795428000.25 {
		t.Fatalf("CreatedDate = %v (%s)", got, out)
	}
	if _, ok := m["VolumeUsedInBytes"]; ok {
		t.Fatalf("unknown usage was sent: %s", out)
	}
}
