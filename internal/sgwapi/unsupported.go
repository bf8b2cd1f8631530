package sgwapi

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/volgw/volgw/internal/awsproto"
	"github.com/volgw/volgw/internal/control"
)

// The operations of the model that volgw does not implement fall in two
// kinds, and clients tell them apart by the message (Terraform's
// aws_storagegateway_gateway reads DescribeSMBSettings on every gateway
// and tolerates only "This operation is not valid for the specified
// gateway"; for the bandwidth and maintenance reads it tolerates either):
//
//   - otherType: an operation of another gateway type (tape, file, stored
//     volume). Called on this cached gateway, it answers what AWS answers:
//     InvalidGatewayRequestException, errorCode
//     UnsupportedOperationForGatewayType, "This operation is not valid for
//     the specified gateway.".
//   - cachedUnimplemented: an operation a cached volume gateway has but
//     volgw does not implement: errorCode NotSupported, "The
//     specified operation is not supported.".
//
// Both are gateway-scoped: the gateway (or volume) the request names is
// looked up first, so an unknown one answers GatewayNotFound (or
// VolumeNotFound) as for every other operation. An operation of another
// type that names no gateway (a file share, tape, tape pool, FSx
// association or cache report by its own ARN, or an account-wide listing
// without GatewayARN) names nothing volgw has: it answers NotSupported.

type unsupportedKind int

const (
	cachedUnimplemented unsupportedKind = iota + 1
	otherType
)

// scope is the input member that names the gateway: a gateway ARN, or an
// ARN that starts with one (a volume's, a VTL device's).
type scope int

const (
	byNothing      scope = iota
	byGatewayARN         // GatewayARN (required, or optional for the listings)
	byVolumeARN          // VolumeARN of a cached volume: the volume must exist
	byVolumeARNs         // VolumeARNs: the first one's gateway
	byVTLDeviceARN       // VTLDeviceARN: gatewayARN/device/…
)

type unsupportedOp struct {
	kind  unsupportedKind
	scope scope
}

// unsupportedOps is every operation of the model that volgw does not
// implement. ops_test.go checks that it and the handlers together cover
// the model exactly.
var unsupportedOps = map[string]unsupportedOp{
	// A cached volume gateway has these.
	//
	// Not implemented, and not to be: the availability-monitor test
	// checks the gateway's VMware vSphere HA configuration (AWS offers it
	// only for gateways on VMware); volgw runs as a process on a host
	// (HostEnvironment OTHER), not in an HA cluster, so there is nothing
	// to test. DescribeAvailabilityMonitorTest answers that no test was
	// run (software.go).
	"StartAvailabilityMonitorTest": {cachedUnimplemented, byGatewayARN},
	// The appliance VM's local console (its login for network and proxy
	// settings) does not exist: volgw is configured by its command line,
	// and accepting a password that guards nothing would be a setting
	// accepted and ignored.
	"SetLocalConsolePassword": {cachedUnimplemented, byGatewayARN},

	// Stored volume gateway.
	"AddWorkingStorage":          {otherType, byGatewayARN},
	"DescribeWorkingStorage":     {otherType, byGatewayARN},
	"CreateStorediSCSIVolume":    {otherType, byGatewayARN},
	"DescribeStorediSCSIVolumes": {otherType, byVolumeARNs},

	// Tape gateway.
	"CancelArchival":                    {otherType, byGatewayARN},
	"CancelRetrieval":                   {otherType, byGatewayARN},
	"CreateTapeWithBarcode":             {otherType, byGatewayARN},
	"CreateTapes":                       {otherType, byGatewayARN},
	"DeleteAutomaticTapeCreationPolicy": {otherType, byGatewayARN},
	"DeleteTape":                        {otherType, byGatewayARN},
	"DescribeTapeRecoveryPoints":        {otherType, byGatewayARN},
	"DescribeTapes":                     {otherType, byGatewayARN},
	"DescribeVTLDevices":                {otherType, byGatewayARN},
	"DisableGateway":                    {otherType, byGatewayARN},
	"ListAutomaticTapeCreationPolicies": {otherType, byGatewayARN},
	"RetrieveTapeArchive":               {otherType, byGatewayARN},
	"RetrieveTapeRecoveryPoint":         {otherType, byGatewayARN},
	"UpdateAutomaticTapeCreationPolicy": {otherType, byGatewayARN},
	"UpdateVTLDeviceType":               {otherType, byVTLDeviceARN},
	"AssignTapePool":                    {otherType, byNothing},
	"CreateTapePool":                    {otherType, byNothing},
	"DeleteTapeArchive":                 {otherType, byNothing},
	"DeleteTapePool":                    {otherType, byNothing},
	"DescribeTapeArchives":              {otherType, byNothing},
	"ListTapePools":                     {otherType, byNothing},
	"ListTapes":                         {otherType, byNothing},

	// File gateways (S3 File, FSx File).
	"AssociateFileSystem":            {otherType, byGatewayARN},
	"CreateNFSFileShare":             {otherType, byGatewayARN},
	"CreateSMBFileShare":             {otherType, byGatewayARN},
	"DescribeSMBSettings":            {otherType, byGatewayARN},
	"JoinDomain":                     {otherType, byGatewayARN},
	"ListFileShares":                 {otherType, byGatewayARN},
	"ListFileSystemAssociations":     {otherType, byGatewayARN},
	"SetSMBGuestPassword":            {otherType, byGatewayARN},
	"UpdateSMBFileShareVisibility":   {otherType, byGatewayARN},
	"UpdateSMBLocalGroups":           {otherType, byGatewayARN},
	"UpdateSMBSecurityStrategy":      {otherType, byGatewayARN},
	"CancelCacheReport":              {otherType, byNothing},
	"DeleteCacheReport":              {otherType, byNothing},
	"DeleteFileShare":                {otherType, byNothing},
	"DescribeCacheReport":            {otherType, byNothing},
	"DescribeFileSystemAssociations": {otherType, byNothing},
	"DescribeNFSFileShares":          {otherType, byNothing},
	"DescribeSMBFileShares":          {otherType, byNothing},
	"DisassociateFileSystem":         {otherType, byNothing},
	"EvictFilesFailingUpload":        {otherType, byNothing},
	"ListCacheReports":               {otherType, byNothing},
	"NotifyWhenUploaded":             {otherType, byNothing},
	"RefreshCache":                   {otherType, byNothing},
	"StartCacheReport":               {otherType, byNothing},
	"UpdateFileSystemAssociation":    {otherType, byNothing},
	"UpdateNFSFileShare":             {otherType, byNothing},
	"UpdateSMBFileShare":             {otherType, byNothing},
}

// resourceLookup is what the unsupported operations need of the control
// plane: whether the gateway or volume a request names exists (an error
// carrying GatewayNotFound or VolumeNotFound when not). *control.Service
// implements it.
type resourceLookup interface {
	DescribeGatewayInformation(ctx context.Context, gatewayARN string) (control.GatewayInfo, error)
	DescribeCachediSCSIVolumes(ctx context.Context, volumeARNs []string) ([]control.CachedVolume, error)
}

// unsupportedHandler answers op as the table says. awsproto has validated
// the input against the model, so the naming members are well formed.
func unsupportedHandler(look resourceLookup, u unsupportedOp) handler {
	return func(ctx context.Context, input []byte) (any, error) {
		var in struct {
			GatewayARN   string   `json:"GatewayARN"`
			VolumeARN    string   `json:"VolumeARN"`
			VolumeARNs   []string `json:"VolumeARNs"`
			VTLDeviceARN string   `json:"VTLDeviceARN"`
		}
		// Only the members above are read; a value of another shape is
		// left empty and the lookup below answers not found.
		_ = json.Unmarshal(input, &in)
		named := true
		var err error
		switch u.scope {
		case byGatewayARN:
			if in.GatewayARN == "" {
				named = false // an account-wide listing
				break
			}
			_, err = look.DescribeGatewayInformation(ctx, in.GatewayARN)
		case byVolumeARN:
			_, err = look.DescribeCachediSCSIVolumes(ctx, []string{in.VolumeARN})
		case byVolumeARNs:
			var first string
			if len(in.VolumeARNs) > 0 {
				first = in.VolumeARNs[0]
			}
			gw, _, _ := strings.Cut(first, "/volume/")
			_, err = look.DescribeGatewayInformation(ctx, gw)
		case byVTLDeviceARN:
			gw, _, _ := strings.Cut(in.VTLDeviceARN, "/device/")
			_, err = look.DescribeGatewayInformation(ctx, gw)
		default:
			named = false
		}
		if err != nil {
			return nil, err
		}
		if u.kind == otherType && named {
			return nil, awsproto.ErrNotValidForGateway()
		}
		return nil, awsproto.ErrNotSupported()
	}
}
