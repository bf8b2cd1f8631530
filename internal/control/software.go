package control

import (
	"context"

	"github.com/volgw/volgw/internal/catalog"
)

// The appliance's software is volgw's own build: the binary the operator
// runs. AWS pushes appliance updates from its side and UpdateGatewaySoftwareNow
// asks the appliance to install the one that is waiting; volgw has no update
// channel of its own (a new version is a new binary, installed by whoever
// runs it), so the build that answers is always the newest one there is
// for it. What AWS does for a gateway that is already current is what
// volgw does every time: the call succeeds (200, the gateway's ARN — the
// API reference has no error for "nothing to update", and the older user
// guide says the operation updates the software "if an update is
// available"), nothing restarts, and DescribeGatewayInformation keeps
// leaving NextUpdateAvailabilityDate out ("If the gateway is not available
// for an update this field is not returned").

// SoftwareVersion is the version of the running build.
func (s *Service) SoftwareVersion() string { return s.softwareVersion }

// UpdateGatewaySoftwareNow checks the gateway's software against the
// newest available, which is the running build: it logs that the gateway
// is up to date and changes nothing. Like every operation that needs the
// appliance, a shut-down gateway answers GatewayNotConnected (AWS lists it
// among this operation's errors).
func (s *Service) UpdateGatewaySoftwareNow(ctx context.Context, gatewayARN string) (string, error) {
	var g catalog.Gateway
	err := s.view(func(tx *catalog.Tx) error {
		var err error
		g, err = s.runningGatewayTx(tx, gatewayARN)
		return err
	})
	if err != nil {
		return "", err
	}
	s.log.Info("update gateway software: the gateway is up to date; no update to apply",
		"gateway", g.ID, "software_version", s.softwareVersion)
	return g.ARN, nil
}

// DescribeAvailabilityMonitorTest looks the gateway up for
// DescribeAvailabilityMonitorTest: volgw never runs the VMware HA test
// (StartAvailabilityMonitorTest answers NotSupported: its host is not a
// vSphere HA cluster), so there is no test to report and the gateway's ARN
// is all the answer holds.
func (s *Service) DescribeAvailabilityMonitorTest(ctx context.Context, gatewayARN string) (string, error) {
	var g catalog.Gateway
	err := s.view(func(tx *catalog.Tx) error {
		var err error
		g, err = s.runningGatewayTx(tx, gatewayARN)
		return err
	})
	return g.ARN, err
}
