package control

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/volgw/volgw/internal/catalog"
)

// ErrAlreadyActivated is returned by IssueActivationKey once the appliance
// has a gateway: a real appliance hands out no key after activation.
var ErrAlreadyActivated = errors.New("control: the appliance is already activated")

// GatewayTypeCached is the only gateway type volgw is.
const GatewayTypeCached = "CACHED"

// gatewayTx looks a gateway up by ARN inside a transaction, whatever its
// state: only the operations a shut-down gateway still answers
// (DescribeGatewayInformation, StartGateway, DeleteGateway) use it directly;
// every other one goes through runningGatewayTx. An ARN that is malformed,
// of another region or account, or of no gateway is GatewayNotFound, as AWS
// answers.
func (s *Service) gatewayTx(tx *catalog.Tx, arn string) (catalog.Gateway, error) {
	id, ok := parseGatewayARN(arn)
	if !ok || s.gatewayARN(id) != arn {
		return catalog.Gateway{}, newError(CodeGatewayNotFound)
	}
	g, err := tx.Gateway(id)
	if errors.Is(err, catalog.ErrNotFound) {
		return catalog.Gateway{}, newError(CodeGatewayNotFound)
	}
	return g, err
}

func (s *Service) isGatewayARN(arn string) bool {
	id, ok := parseGatewayARN(arn)
	return ok && s.gatewayARN(id) == arn
}

// runningGatewayTx is gatewayTx for every operation a shut-down gateway
// refuses with GatewayNotConnected. AWS documents that once a gateway is
// shut down "you cannot call any other API except StartGateway,
// DescribeGatewayInformation, and ListGateways"; volgw also accepts
// DeleteGateway, which AWS performs without the appliance (it is how a
// gateway that will not come back is retired). Every other lookup of a
// gateway, volume, target or taggable resource goes through here, so there
// is one rule in one place.
func (s *Service) runningGatewayTx(tx *catalog.Tx, arn string) (catalog.Gateway, error) {
	g, err := s.gatewayTx(tx, arn)
	if err != nil {
		return g, err
	}
	return g, connected(g)
}

// connected: a shut-down gateway is not connected.
func connected(g catalog.Gateway) error {
	if g.State != catalog.GatewayRunning {
		return newError(CodeGatewayNotConnected)
	}
	return nil
}

// IssueActivationKey is the appliance's answer to its activation GET: a
// one-time key for ActivateGateway in region.
func (s *Service) IssueActivationKey(ctx context.Context, region, gatewayType string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key, err := s.ids.activationKey()
	if err != nil {
		return "", err
	}
	err = s.update(func(tx *catalog.Tx) error {
		gs, err := tx.Gateways()
		if err != nil {
			return err
		}
		if len(gs) > 0 {
			return ErrAlreadyActivated
		}
		return tx.PutActivationKey(catalog.ActivationKey{Key: key, Region: region, GatewayType: gatewayType, IssuedAt: s.now()})
	})
	if err != nil {
		return "", err
	}
	return key, nil
}

// ActivateGatewayInput is ActivateGateway's input.
type ActivateGatewayInput struct {
	ActivationKey   string
	GatewayName     string
	GatewayTimezone string
	GatewayRegion   string
	GatewayType     string // empty: the type the key was issued for
	Tags            []Tag
}

// ActivateGateway turns the appliance into a gateway, consuming the key.
func (s *Service) ActivateGateway(ctx context.Context, in ActivateGatewayInput) (gatewayARN string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, err := s.ids.gatewayID()
	if err != nil {
		return "", err
	}
	err = s.update(func(tx *catalog.Tx) error {
		key, err := tx.ActivationKey(in.ActivationKey)
		if errors.Is(err, catalog.ErrNotFound) {
			return newError(CodeActivationKeyNotFound)
		} else if err != nil {
			return err
		}
		// One appliance, one gateway: a key issued before the appliance
		// was activated is void once it is.
		if gs, err := tx.Gateways(); err != nil {
			return err
		} else if len(gs) > 0 {
			return newError(CodeActivationKeyInvalid)
		}
		if s.now().Sub(key.IssuedAt) > ActivationKeyLifetime {
			return errExpired{key.Key}
		}
		if in.GatewayRegion != s.region || (key.Region != "" && key.Region != in.GatewayRegion) {
			return &Error{Code: "RegionInvalid", Message: "The specified region is not valid."}
		}
		typ := in.GatewayType
		if typ == "" {
			typ = key.GatewayType
		}
		if typ != GatewayTypeCached {
			return newError(CodeNotSupported)
		}
		if err := checkTags(in.Tags); err != nil {
			return err
		}
		if err := checkTimezone(in.GatewayTimezone); err != nil {
			return err
		}
		if _, err := tx.Gateway(id); err == nil {
			return fmt.Errorf("control: gateway ID %s already in use", id)
		}
		g := catalog.Gateway{
			ID: id, ARN: s.gatewayARN(id), Name: in.GatewayName, Timezone: in.GatewayTimezone,
			Region: in.GatewayRegion, Type: typ, State: catalog.GatewayRunning, CreatedAt: s.now(),
		}
		if err := tx.PutGateway(g); err != nil {
			return err
		}
		if err := tx.PutTags(g.ARN, toCatalogTags(in.Tags)); err != nil {
			return err
		}
		return tx.DeleteActivationKey(key.Key)
	})
	if ex, ok := err.(errExpired); ok {
		// The failed Update kept nothing; forget the expired key now.
		if err := s.update(func(tx *catalog.Tx) error { return tx.DeleteActivationKey(ex.key) }); err != nil {
			return "", err
		}
		return "", newError(CodeActivationKeyExpired)
	}
	if err != nil {
		return "", err
	}
	return s.gatewayARN(id), nil
}

// errExpired carries an expired key out of the Update that found it, so
// that the key can be deleted in a transaction of its own.
type errExpired struct{ key string }

func (e errExpired) Error() string { return "activation key expired" }

// GatewaySummary is one entry of ListGateways.
type GatewaySummary struct {
	GatewayARN, GatewayID, GatewayName, GatewayType string
	GatewayOperationalState                         string // always ACTIVE (see ListGateways)
	HostEnvironment                                 string
}

// ListGateways lists gateways ordered by ARN, from marker (an ARN from a
// previous page; "" for the first), at most limit (0: 100).
func (s *Service) ListGateways(ctx context.Context, marker string, limit int) ([]GatewaySummary, string, error) {
	var gs []catalog.Gateway
	if err := s.view(func(tx *catalog.Tx) error {
		var err error
		gs, err = tx.Gateways()
		return err
	}); err != nil {
		return nil, "", err
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].ARN < gs[j].ARN })
	arns := make([]string, len(gs))
	for i, g := range gs {
		arns[i] = g.ARN
	}
	from, to, next, err := page(arns, marker, limit, 100, s.isGatewayARN)
	if err != nil {
		return nil, "", err
	}
	out := []GatewaySummary{}
	for _, g := range gs[from:to] {
		// GatewayOperationalState's documented values are ACTIVE and
		// DISABLED; DISABLED is the one-way state of DisableGateway (a
		// tape gateway retired for good). A shut-down gateway is still
		// ACTIVE: its running state is DescribeGatewayInformation's
		// GatewayState.
		out = append(out, GatewaySummary{
			GatewayARN: g.ARN, GatewayID: g.ID, GatewayName: g.Name, GatewayType: g.Type,
			GatewayOperationalState: GatewayOperationalActive, HostEnvironment: HostEnvironment,
		})
	}
	return out, next, nil
}

// GatewayOperationalActive is ListGateways' GatewayOperationalState of a
// gateway that has not been disabled.
const GatewayOperationalActive = "ACTIVE"

// HostEnvironment is what volgw reports as the gateway's host: not one of
// AWS's hypervisors.
const HostEnvironment = "OTHER"

// errMarker answers a Marker this gateway never handed out.
var errMarker = invalidParameters("The specified marker is not valid.")

// page returns the [from, to) window of sorted keys that starts at marker,
// and the marker of the next page ("" when this is the last). A marker is
// the first key of the page it starts, so pages stay correct when items
// before it are deleted; a marker that is not of the form of a key (valid
// says) was never handed out and is refused, never read as "from the
// start".
func page(keys []string, marker string, limit, defaultLimit int, valid func(string) bool) (from, to int, next string, err error) {
	if limit <= 0 {
		limit = defaultLimit
	}
	if marker != "" {
		if !valid(marker) {
			return 0, 0, "", errMarker
		}
		from = sort.SearchStrings(keys, marker)
	}
	to = from + limit
	if to >= len(keys) {
		return from, len(keys), "", nil
	}
	return from, to, keys[to], nil
}

// NetworkInterface is one of the gateway's network interfaces.
type NetworkInterface struct {
	Ipv4Address string
}

// GatewayInfo is DescribeGatewayInformation's output.
type GatewayInfo struct {
	GatewayARN, GatewayID, GatewayName, GatewayTimezone string
	GatewayState, GatewayType                           string
	GatewayNetworkInterfaces                            []NetworkInterface
	HostEnvironment                                     string
	CloudWatchLogGroupARN                               string
	Tags                                                []Tag
	CreatedAt                                           time.Time
}

// DescribeGatewayInformation describes a gateway; its one network interface
// is the address the iSCSI targets listen on.
func (s *Service) DescribeGatewayInformation(ctx context.Context, gatewayARN string) (GatewayInfo, error) {
	var info GatewayInfo
	err := s.view(func(tx *catalog.Tx) error {
		g, err := s.gatewayTx(tx, gatewayARN)
		if err != nil {
			return err
		}
		tags, err := tx.Tags(g.ARN)
		if err != nil {
			return err
		}
		info = GatewayInfo{
			GatewayARN: g.ARN, GatewayID: g.ID, GatewayName: g.Name, GatewayTimezone: g.Timezone,
			GatewayState: g.State, GatewayType: g.Type,
			GatewayNetworkInterfaces: []NetworkInterface{{Ipv4Address: s.iscsiAddress}},
			HostEnvironment:          HostEnvironment, CloudWatchLogGroupARN: g.CloudWatchLogGroupARN,
			Tags: fromCatalogTags(tags), CreatedAt: g.CreatedAt,
		}
		return nil
	})
	return info, err
}

// UpdateGatewayInformationInput is UpdateGatewayInformation's input; nil
// fields are left as they are.
type UpdateGatewayInformationInput struct {
	GatewayARN            string
	GatewayName           *string
	GatewayTimezone       *string
	CloudWatchLogGroupARN *string
}

// UpdateGatewayInformation renames a gateway or changes its time zone.
func (s *Service) UpdateGatewayInformation(ctx context.Context, in UpdateGatewayInformationInput) (arn, name string, err error) {
	if in.GatewayTimezone != nil {
		if err := checkTimezone(*in.GatewayTimezone); err != nil {
			return "", "", err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err = s.update(func(tx *catalog.Tx) error {
		g, err := s.runningGatewayTx(tx, in.GatewayARN)
		if err != nil {
			return err
		}
		if in.GatewayName != nil {
			g.Name = *in.GatewayName
		}
		if in.GatewayTimezone != nil {
			g.Timezone = *in.GatewayTimezone
		}
		if in.CloudWatchLogGroupARN != nil {
			g.CloudWatchLogGroupARN = *in.CloudWatchLogGroupARN
		}
		arn, name = g.ARN, g.Name
		return tx.PutGateway(g)
	})
	return arn, name, err
}

// ShutdownGateway stops the gateway: its targets leave the wire and the
// operations that need the appliance answer GatewayNotConnected until
// StartGateway. Volumes and their data stay.
func (s *Service) ShutdownGateway(ctx context.Context, gatewayARN string) (string, error) {
	return s.setGatewayState(ctx, gatewayARN, catalog.GatewayShutdown)
}

// StartGateway starts a shut-down gateway and exports its targets again.
func (s *Service) StartGateway(ctx context.Context, gatewayARN string) (string, error) {
	return s.setGatewayState(ctx, gatewayARN, catalog.GatewayRunning)
}

func (s *Service) setGatewayState(ctx context.Context, gatewayARN, state string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var vols []catalog.Volume
	var g catalog.Gateway
	lookup := s.gatewayTx
	if state == catalog.GatewayShutdown {
		lookup = s.runningGatewayTx // shutting down a shut-down gateway is refused like any other call
	}
	err := s.view(func(tx *catalog.Tx) error {
		var err error
		if g, err = lookup(tx, gatewayARN); err != nil {
			return err
		}
		vols, err = volumesOf(tx, g.ID)
		return err
	})
	if err != nil {
		return "", err
	}
	for _, v := range vols {
		if state == catalog.GatewayShutdown {
			err = s.exporter.Unexport(ctx, iqnOf(v))
		} else {
			if s.lostVolume(ctx, v.ID) {
				// Nothing to put on the wire; the start logged it at
				// ERROR and DescribeCachediSCSIVolumes shows it.
				continue
			}
			err = s.export(ctx, v)
		}
		if err != nil {
			return "", fmt.Errorf("control: %s volume %s: %w", state, v.ID, err)
		}
	}
	err = s.update(func(tx *catalog.Tx) error {
		g, err := s.gatewayTx(tx, gatewayARN)
		if err != nil {
			return err
		}
		g.State = state
		return tx.PutGateway(g)
	})
	return g.ARN, err
}

// DeleteGateway deletes a gateway and its volumes (their snapshots stay, as
// on AWS) and frees the appliance's disks, which can then be activated
// again.
func (s *Service) DeleteGateway(ctx context.Context, gatewayARN string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var g catalog.Gateway
	var vols []catalog.Volume
	err := s.update(func(tx *catalog.Tx) error {
		var err error
		if g, err = s.gatewayTx(tx, gatewayARN); err != nil {
			return err
		}
		if vols, err = allVolumesOf(tx, g.ID); err != nil {
			return err
		}
		for _, v := range vols {
			if err := deleteVolumeRecords(tx, v); err != nil {
				return err
			}
		}
		disks, err := tx.Disks()
		if err != nil {
			return err
		}
		for _, d := range disks {
			d.Allocation = catalog.DiskAvailable
			if err := tx.PutDisk(d); err != nil {
				return err
			}
		}
		if err := tx.PutTags(g.ARN, nil); err != nil {
			return err
		}
		if err := tx.DeleteMaintenance(g.ARN); err != nil {
			return err
		}
		if err := tx.DeleteBandwidth(g.ARN); err != nil {
			return err
		}
		return tx.DeleteGateway(g.ID)
	})
	if err != nil {
		return "", err
	}
	// The catalog no longer names these volumes; removing them from the
	// wire and the engine can only leave unnamed orphans if it fails.
	for _, v := range vols {
		if err := s.exporter.Unexport(ctx, iqnOf(v)); err != nil {
			s.log.Warn("delete gateway: unexport", "volume", v.ID, "err", err)
		}
		if err := s.engine.DeleteVolume(ctx, v.ID); err != nil && !errors.Is(err, ErrVolumeNotFound) {
			s.log.Warn("delete gateway: engine delete", "volume", v.ID, "err", err)
		}
	}
	return g.ARN, nil
}
