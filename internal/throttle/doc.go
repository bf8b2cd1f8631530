// Package throttle paces the bytes a gateway exchanges with its object
// store, for the bandwidth rate limits of the Storage Gateway API
// (UpdateBandwidthRateLimit and its schedule). A Limiter is a byte rate
// that can change at any time; Store wraps a blob.Store so that every
// byte sent (Put bodies: blocks, pages, roots, heads, the catalog's copy)
// passes the upload Limiter and every byte received (Get results: cold
// reads, restores, clones) the download one.
//
// It knows nothing of schedules, time zones or the API: the control plane
// decides the rate in force and sets it (SetRate); main wires the Store
// between the engine and the real store. It must not touch what the
// objects mean.
package throttle
