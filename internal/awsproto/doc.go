// Package awsproto is the AWS wire protocol of volgw: it knows HTTP, SigV4,
// the JSON 1.1 protocol that Storage Gateway speaks, the EC2 query protocol
// and AWS's error envelopes. It knows nothing of gateways or volumes.
//
// The pieces, in the order a request meets them:
//
//   - Server (server.go) is the one http.Handler of the API endpoint. It
//     answers the appliance's unsigned activation GET (until the appliance
//     is activated: then the page is gone), verifies SigV4 on
//     every other request, gives every request an ID, limits body sizes,
//     recovers from panics, and routes to a JSONService (X-Amz-Target) or a
//     QueryService (Action=...).
//   - VerifySigV4 (sigv4.go) is SigV4 as a straight line of pure functions:
//     parse the Authorization header, check the credential scope and date,
//     build the canonical request from whatever SignedHeaders the client
//     chose, and compare signatures in constant time. Presigned requests
//     (the same fields in the query, valid until X-Amz-Expires) verify too.
//   - Model (model.go) is a botocore service model. Model.Validate checks
//     an operation's JSON input against the model's shapes (types, required,
//     length, pattern, range, enum) and produces AWS's exact
//     ValidationException / SerializationException.
//   - Error (errors.go) is the one typed API error; WriteJSONError and
//     WriteQueryError are the only places that encode errors.
//   - QueryParams and EncodeQueryResponse (query.go) are the EC2 query codec.
//
// It must not touch the control plane, the catalog or the engine: services
// plug in through JSONService and QueryService, which sgwapi and ec2api
// implement.
package awsproto
