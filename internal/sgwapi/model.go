package sgwapi

import (
	_ "embed"

	"github.com/volgw/volgw/internal/awsproto"
)

// modelJSON is the Storage Gateway service model, unchanged from AWS's
// botocore (API version 2013-06-30).
//
//go:embed model/storagegateway-2013-06-30.service.json
var modelJSON []byte

// LoadModel returns the Storage Gateway model with the limits the service
// enforces beyond it (at most 50 tags per request).
func LoadModel() (*awsproto.Model, error) {
	return awsproto.LoadModel(modelJSON, awsproto.WithListMax("Tags", 50))
}
