// Package sgwapi is the Storage Gateway API of volgw: one handler per
// operation that decodes the JSON input (already verified and validated by
// awsproto against the model), calls the control plane, and returns the
// output with AWS's member names. All 96 operations of the model are
// recognised.
//
// The operations volgw does not implement answer as AWS does
// (unsupported.go), after looking up the gateway (or volume) the request
// names, so that an unknown one is GatewayNotFound as everywhere else:
//
//   - operations of other gateway types (tapes, file shares, stored
//     volumes, FSx) answer InvalidGatewayRequestException, errorCode
//     UnsupportedOperationForGatewayType, "This operation is not valid for
//     the specified gateway.", as AWS does for a cached gateway (and as
//     Terraform's aws_storagegateway_gateway expects of DescribeSMBSettings);
//   - the operations a real cached volume gateway has but volgw does
//     not implement, StartAvailabilityMonitorTest and
//     SetLocalConsolePassword (which volgw has nothing to act on:
//     unsupported.go), answer errorCode NotSupported, "The specified
//     operation is not supported.", rather than pretend;
//   - operations of other gateway types that name no gateway (a file
//     share, tape, pool or report by its own ARN; an account-wide listing
//     without GatewayARN) answer NotSupported too.
//
// Control-plane errors become API errors in one place, apiError.
//
// It must not touch HTTP (awsproto), the catalog or the engine: it speaks
// only to *control.Service.
package sgwapi
