package sgwapi

import (
	"context"

	"github.com/volgw/volgw/internal/control"
)

// The gateway's software and the appliance-level operations of a cached
// volume gateway (control/software.go says what the software is).

// updateGatewaySoftwareNow answers as AWS answers for a gateway whose
// software is current: 200 with the gateway's ARN, no error (automation
// that calls it on a schedule must not fail).
func updateGatewaySoftwareNow(svc *control.Service) handler {
	return op(func(ctx context.Context, in gatewayARNInput) (any, error) {
		arn, err := svc.UpdateGatewaySoftwareNow(ctx, in.GatewayARN)
		return gatewayARNOutput{arn}, err
	})
}

// describeAvailabilityMonitorTestOutput is the model's output: Status and
// StartTime are absent ("null") when no test has been performed.
type describeAvailabilityMonitorTestOutput struct {
	GatewayARN string `json:"GatewayARN"`
	Status     string `json:"Status,omitempty"`
	StartTime  *epoch `json:"StartTime,omitempty"`
}

// describeAvailabilityMonitorTest: the high-availability monitoring test
// is VMware HA's (StartAvailabilityMonitorTest, unsupported.go), and none
// has ever run on volgw's host, so the answer is the documented one for a
// gateway that has had no test: "If a test isn't performed, the status and
// start time in the response would be null" — the gateway's ARN alone.
func describeAvailabilityMonitorTest(svc *control.Service) handler {
	return op(func(ctx context.Context, in gatewayARNInput) (any, error) {
		arn, err := svc.DescribeAvailabilityMonitorTest(ctx, in.GatewayARN)
		return describeAvailabilityMonitorTestOutput{GatewayARN: arn}, err
	})
}

// DescribeGatewayInformation's members beyond the ones every gateway has
// (handlers.go), and why each is present or absent for volgw:
//
//   - SoftwareVersion: the running build's version (cmd/volgw
//     buildVersion: the -ldflags -X version of `make build`, or the module
//     version `go install …@vX` records, or the VCS pseudo-version `go
//     build` embeds in a git checkout).
//   - NextUpdateAvailabilityDate: absent, as AWS leaves it "if the gateway
//     is not available for an update": the running build is the newest
//     there is for it (UpdateGatewaySoftwareNow).
//   - LastSoftwareUpdate: absent, as AWS leaves it for a gateway that "has
//     never been updated": volgw installs nothing by itself.
//   - SoftwareUpdatesEndDate, DeprecationDate: absent, as for a gateway
//     whose software is supported: volgw has no end-of-support date.
//   - GatewayCapacity, SupportedGatewayCapacities: absent: the metadata
//     cache size of S3 File Gateways ("Specifies the size of the
//     gateway's metadata cache"); a cached volume gateway has none.
//   - HostEnvironmentId: absent: "only available for certain host
//     environments" (an EC2 instance, a Snowball); HostEnvironment is
//     OTHER.
//   - Ec2InstanceId, Ec2InstanceRegion: absent: not launched on EC2.
//   - VPCEndpoint: absent: the gateway reaches its store directly, not
//     through an AWS PrivateLink endpoint.
//   - GatewayNetworkInterfaces[].MacAddress: absent ("currently
//     unsupported and will not be returned in output"); Ipv6Address
//     absent: the iSCSI listener has an IPv4 address.
