package catalog

import "fmt"

// bucketBandwidth holds each gateway's bandwidth rate limits, keyed by
// gateway ARN. Like bucketMaintenance it is created on first write.
var bucketBandwidth = []byte("bandwidth")

// Bandwidth is a gateway's bandwidth rate limits: the plain limits
// (UpdateBandwidthRateLimit) and the schedule
// (UpdateBandwidthRateLimitSchedule). Rates are in bits per second; zero
// means no limit. A gateway with no record has no limits.
type Bandwidth struct {
	V          int
	GatewayARN string
	Upload     int64               `json:",omitempty"`
	Download   int64               `json:",omitempty"`
	Intervals  []BandwidthInterval `json:",omitempty"`
}

// BandwidthInterval is one interval of a schedule: on DaysOfWeek (0 is
// Sunday), from Start to End, both "hour*60+minute" in the gateway's time
// zone, End's minute included.
type BandwidthInterval struct {
	DaysOfWeek []int
	Start, End int
	Upload     int64 `json:",omitempty"`
	Download   int64 `json:",omitempty"`
}

func (r *Bandwidth) check() error {
	if err := checkVersion(r.V); err != nil {
		return err
	}
	if r.GatewayARN == "" || r.Upload < 0 || r.Download < 0 {
		return invalid("bandwidth limits of %q: upload %d download %d", r.GatewayARN, r.Upload, r.Download)
	}
	for _, iv := range r.Intervals {
		ok := iv.Start >= 0 && iv.End < 24*60 && iv.Start <= iv.End && len(iv.DaysOfWeek) > 0 && iv.Upload >= 0 && iv.Download >= 0
		for _, d := range iv.DaysOfWeek {
			ok = ok && d >= 0 && d <= 6
		}
		if !ok {
			return invalid("bandwidth schedule of %q: interval %+v", r.GatewayARN, iv)
		}
	}
	return nil
}

// Bandwidth returns a gateway's bandwidth limits, ErrNotFound if it has
// none.
func (tx *Tx) Bandwidth(gatewayARN string) (Bandwidth, error) {
	if tx.tx.Bucket(bucketBandwidth) == nil {
		return Bandwidth{}, fmt.Errorf("%s %q: %w", bucketBandwidth, gatewayARN, ErrNotFound)
	}
	return get[Bandwidth](tx, bucketBandwidth, gatewayARN)
}

// Bandwidths returns every gateway's bandwidth limits, by ARN.
func (tx *Tx) Bandwidths() ([]Bandwidth, error) {
	if tx.tx.Bucket(bucketBandwidth) == nil {
		return nil, nil
	}
	return list[Bandwidth](tx, bucketBandwidth, "")
}

// PutBandwidth creates or replaces a gateway's bandwidth limits; a record
// with no limit and no interval is deleted instead.
func (tx *Tx) PutBandwidth(b Bandwidth) error {
	if b.Upload == 0 && b.Download == 0 && len(b.Intervals) == 0 {
		return tx.DeleteBandwidth(b.GatewayARN)
	}
	if _, err := tx.tx.CreateBucketIfNotExists(bucketBandwidth); err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	b.V = currentVersion
	return put(tx, bucketBandwidth, b.GatewayARN, &b)
}

// DeleteBandwidth forgets a gateway's limits; none is not an error.
func (tx *Tx) DeleteBandwidth(gatewayARN string) error {
	if tx.tx.Bucket(bucketBandwidth) == nil {
		return nil
	}
	if _, err := tx.Bandwidth(gatewayARN); err != nil {
		if isNotFound(err) {
			return nil
		}
		return err
	}
	return del(tx, bucketBandwidth, gatewayARN)
}

// checkBandwidth is Check's part for bandwidth limits: each names a
// gateway the catalog holds.
func (tx *Tx) checkBandwidth(gateways map[string]bool, bad func(string, ...any)) error {
	all, err := tx.Bandwidths()
	if err != nil {
		return err
	}
	for _, b := range all {
		if !gateways[b.GatewayARN] {
			bad("bandwidth limits of missing gateway %s", b.GatewayARN)
		}
	}
	return nil
}
