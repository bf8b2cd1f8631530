package sgwapi

import (
	"context"

	"github.com/volgw/volgw/internal/control"
)

// resetCache is ResetCache: the cache disks are dropped and become
// AVAILABLE for AddCache (control.Service.ResetCache says what volgw
// keeps that AWS may lose).
func resetCache(svc *control.Service) handler {
	return op(func(ctx context.Context, in gatewayARNInput) (any, error) {
		arn, err := svc.ResetCache(ctx, in.GatewayARN)
		return gatewayARNOutput{arn}, err
	})
}
