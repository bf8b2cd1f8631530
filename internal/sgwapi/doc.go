// Package sgwapi is the Storage Gateway API of volgw: one handler per
// operation that decodes the JSON input (already verified and validated by
// awsproto against the model), calls the control plane, and returns the
// output with AWS's member names. All 96 operations of the model are
// recognised; those that do not apply to a cached volume gateway (tapes,
// file shares, stored volumes, FSx, ...) answer InvalidGatewayRequestException,
// errorCode NotSupported, "The specified operation is not supported.".
//
// Operations a real cached volume gateway has but volgw does not implement
// yet answer NotSupported too, rather than pretend: AttachVolume,
// DetachVolume, ResetCache, the bandwidth rate limit operations (volgw does
// not throttle uploads), the maintenance-window and software-update
// operations, and the availability monitor test.
//
// Control-plane errors become API errors in one place, apiError.
//
// It must not touch HTTP (awsproto), the catalog or the engine: it speaks
// only to *control.Service.
package sgwapi
