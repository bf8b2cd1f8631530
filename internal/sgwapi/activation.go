package sgwapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/volgw/volgw/internal/awsproto"
	"github.com/volgw/volgw/internal/control"
)

// IssueActivationKey answers the appliance's activation page
// (awsproto.ActivationKeyIssuer): a key only for what ActivateGateway will
// accept — this appliance's region, as a cached volume gateway — and no
// key once the appliance is activated, as a real appliance stops serving
// its activation page then. A refused request says why in plain words.
func (a *API) IssueActivationKey(ctx context.Context, region, gatewayType string) (string, error) {
	if want := a.svc.Region(); region != want {
		return "", &awsproto.ActivationRefusedError{Reason: fmt.Sprintf(
			"This gateway can be activated only in region %s; activationRegion=%s is not it.", want, region)}
	}
	if gatewayType != control.GatewayTypeCached {
		return "", &awsproto.ActivationRefusedError{Reason: fmt.Sprintf(
			"This gateway can be activated only as a cached volume gateway (gatewayType=%s); gatewayType=%s is not supported.",
			control.GatewayTypeCached, gatewayType)}
	}
	key, err := a.svc.IssueActivationKey(ctx, region, gatewayType)
	if errors.Is(err, control.ErrAlreadyActivated) {
		return "", fmt.Errorf("%w: %w", awsproto.ErrApplianceActivated, err)
	}
	return key, err
}
