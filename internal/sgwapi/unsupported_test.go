package sgwapi_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/volgw/volgw/internal/awsproto"
	"github.com/volgw/volgw/internal/sgwapi"
)

// The operations volgw does not implement, by what they answer; written
// out here, apart from sgwapi's own table, so that the table is checked
// against an independent list.
var (
	// Valid for a cached volume gateway, not implemented: NotSupported.
	notImplementedOps = []string{
		"StartAvailabilityMonitorTest", "SetLocalConsolePassword",
	}
	// Operations of other gateway types that name the gateway: "not valid
	// for the specified gateway".
	otherTypeGatewayOps = []string{
		"AddWorkingStorage", "DescribeWorkingStorage", "CreateStorediSCSIVolume", "DescribeStorediSCSIVolumes",
		"CancelArchival", "CancelRetrieval", "CreateTapeWithBarcode", "CreateTapes", "DeleteAutomaticTapeCreationPolicy",
		"DeleteTape", "DescribeTapeRecoveryPoints", "DescribeTapes", "DescribeVTLDevices", "DisableGateway",
		"ListAutomaticTapeCreationPolicies", "RetrieveTapeArchive", "RetrieveTapeRecoveryPoint",
		"UpdateAutomaticTapeCreationPolicy", "UpdateVTLDeviceType", "AssociateFileSystem", "CreateNFSFileShare",
		"CreateSMBFileShare", "DescribeSMBSettings", "JoinDomain", "ListFileShares", "ListFileSystemAssociations",
		"SetSMBGuestPassword", "UpdateSMBFileShareVisibility", "UpdateSMBLocalGroups", "UpdateSMBSecurityStrategy",
	}
	// Operations of other gateway types that name no gateway: NotSupported.
	otherTypeResourceOps = []string{
		"AssignTapePool", "CreateTapePool", "DeleteTapeArchive", "DeleteTapePool", "DescribeTapeArchives",
		"ListTapePools", "ListTapes", "CancelCacheReport", "DeleteCacheReport", "DeleteFileShare", "DescribeCacheReport",
		"DescribeFileSystemAssociations", "DescribeNFSFileShares", "DescribeSMBFileShares", "DisassociateFileSystem",
		"EvictFilesFailingUpload", "ListCacheReports", "NotifyWhenUploaded", "RefreshCache", "StartCacheReport",
		"UpdateFileSystemAssociation", "UpdateNFSFileShare", "UpdateSMBFileShare",
	}
)

// TestUnsupportedOperationsAgainstACachedGateway calls every operation
// volgw does not implement on a real cached gateway, and on an unknown
// one: the gateway is looked up first (GatewayNotFound), then an
// operation of another gateway type answers "This operation is not valid
// for the specified gateway." (UnsupportedOperationForGatewayType) and one
// a cached gateway has but volgw lacks answers NotSupported.
func TestUnsupportedOperationsAgainstACachedGateway(t *testing.T) {
	s := newStack(t)
	gw, nic := s.readyGateway(t, "unsupported")
	vol := s.createVolume(t, createInput(gw, nic, "unsupported"))
	api := sgwapi.New(s.svc)
	unknownGW := "arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-0000AAAA"
	body := func(gw, vol string) []byte {
		return fmt.Appendf(nil, `{"GatewayARN":%q,"VolumeARN":%q,"VolumeARNs":[%q],"VTLDeviceARN":%q,"TapeARN":"arn:aws:storagegateway:us-east-1:111122223333:tape/TEST0001"}`,
			gw, vol, vol, gw+"/device/AMZN_SGW-0000AAAA_TAPEDRIVE_00001")
	}
	known, unknown := body(gw, vol), body(unknownGW, unknownGW+"/volume/vol-0123456789ABCDEF0")
	want := func(op string, in []byte, code, message string) {
		t.Helper()
		_, err := api.Invoke(context.Background(), op, in)
		var e *awsproto.Error
		if !errors.As(err, &e) || e.Type != awsproto.TypeInvalidGatewayRequest || e.ErrorCode != code || e.Message != message || e.Status != 400 {
			t.Errorf("%s(%s): %v; want %s %q", op, in, err, code, message)
		}
	}
	const (
		notValid    = "This operation is not valid for the specified gateway."
		notSupp     = "The specified operation is not supported."
		gwNotFound  = "The specified gateway was not found."
		volNotFound = "The specified volume was not found."
	)
	n := 0
	for _, op := range otherTypeGatewayOps {
		want(op, known, "UnsupportedOperationForGatewayType", notValid)
		want(op, unknown, "GatewayNotFound", gwNotFound)
		n++
	}
	for _, op := range notImplementedOps {
		want(op, known, "NotSupported", notSupp)
		want(op, unknown, "GatewayNotFound", gwNotFound)
		n++
	}
	for _, op := range otherTypeResourceOps {
		want(op, known, "NotSupported", notSupp)
		n++
	}
	// The account-wide listings, without a gateway, name nothing volgw has.
	for _, op := range []string{"ListFileShares", "ListFileSystemAssociations", "ListAutomaticTapeCreationPolicies"} {
		want(op, []byte(`{}`), "NotSupported", notSupp)
	}
	if len(api.Implemented())+n != 96 {
		t.Fatalf("%d implemented + %d unsupported operations checked, want 96", len(api.Implemented()), n)
	}
}
