package catalog

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInconsistent wraps every violation Check finds.
var ErrInconsistent = errors.New("catalog: inconsistent")

// Check verifies the invariants that span records, which no single Put can
// check. It reads the whole catalog, so it is meant for tests and for
// diagnosis, not for every request:
//
//   - every volume belongs to an existing gateway, under that gateway's ARN;
//   - TargetNames are unique within a gateway among its attached
//     volumes (a DETACHED one has no target), and TargetARN is
//     <gateway ARN>/target/iqn.1997-05.com.amazon:<TargetName>;
//   - CHAP credentials, schedules and ClientTokens name existing
//     targets/volumes, maintenance windows existing gateways;
//   - tags belong to an existing gateway or volume;
//   - at most one gateway exists (one appliance, one gateway);
//   - a disk is allocated only while a gateway exists.
func (tx *Tx) Check() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInconsistent}, args...)...))
	}
	gateways, err := tx.Gateways()
	if err != nil {
		return err
	}
	if len(gateways) > 1 {
		bad("%d gateways on one appliance", len(gateways))
	}
	gatewayByID := map[string]Gateway{}
	resources := map[string]bool{}
	for _, g := range gateways {
		gatewayByID[g.ID] = g
		resources[g.ARN] = true
	}
	volumes, err := tx.Volumes()
	if err != nil {
		return err
	}
	targets := map[string]bool{}
	targetNames := map[string]string{} // gateway ID + TargetName → volume ID
	for _, v := range volumes {
		g, ok := gatewayByID[v.GatewayID]
		if !ok {
			bad("volume %s of missing gateway %s", v.ID, v.GatewayID)
			continue
		}
		if v.ARN != g.ARN+"/volume/"+v.ID {
			bad("volume %s has ARN %s outside gateway %s", v.ID, v.ARN, g.ARN)
		}
		if v.TargetARN != g.ARN+"/target/iqn.1997-05.com.amazon:"+v.TargetName {
			bad("volume %s target ARN %s does not match TargetName %q", v.ID, v.TargetARN, v.TargetName)
		}
		if v.Attachment == VolumeDetached {
			// Its target is gone (DetachVolume): the name is free.
			resources[v.ARN] = true
			continue
		}
		key := v.GatewayID + sep + v.TargetName
		if other, dup := targetNames[key]; dup {
			bad("TargetName %q used by %s and %s", v.TargetName, other, v.ID)
		}
		targetNames[key] = v.ID
		targets[v.TargetARN] = true
		resources[v.ARN] = true
	}
	err = tx.forEach(bucketChap, func(key string, raw []byte) error {
		target, _, _ := strings.Cut(key, sep)
		if !targets[target] {
			bad("CHAP credential %q for missing target", key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	schedules, err := tx.Schedules()
	if err != nil {
		return err
	}
	for _, s := range schedules {
		if !resources[s.VolumeARN] || !strings.Contains(s.VolumeARN, "/volume/") {
			bad("schedule of missing volume %s", s.VolumeARN)
		}
	}
	gatewayARNs := map[string]bool{}
	for _, g := range gateways {
		gatewayARNs[g.ARN] = true
	}
	if err := tx.checkMaintenance(gatewayARNs, bad); err != nil {
		return err
	}
	if err := tx.checkBandwidth(gatewayARNs, bad); err != nil {
		return err
	}
	tokens, err := list[ClientToken](tx, bucketClientTokens, "")
	if err != nil {
		return err
	}
	for _, t := range tokens {
		if !resources[t.ResultARN] {
			bad("ClientToken %q names missing %s", t.Token, t.ResultARN)
		}
	}
	tagged, err := list[ResourceTags](tx, bucketTags, "")
	if err != nil {
		return err
	}
	for _, rt := range tagged {
		if !resources[rt.ResourceARN] {
			bad("tags of missing resource %s", rt.ResourceARN)
		}
	}
	disks, err := tx.Disks()
	if err != nil {
		return err
	}
	for _, d := range disks {
		if d.Allocation != DiskAvailable && len(gateways) == 0 {
			bad("disk %s allocated as %s with no gateway", d.ID, d.Allocation)
		}
	}
	return errors.Join(errs...)
}

// forEach calls fn with every raw record of a bucket.
func (tx *Tx) forEach(bucket []byte, fn func(key string, raw []byte) error) error {
	return tx.tx.Bucket(bucket).ForEach(func(k, v []byte) error { return fn(string(k), v) })
}
