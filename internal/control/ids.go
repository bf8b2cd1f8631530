package control

import (
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// IQNPrefix is the prefix of every target's IQN; the TargetName follows it.
const IQNPrefix = "iqn.1997-05.com.amazon:"

// RecoveryPointTimeLayout is how VolumeRecoveryPointTime is written: ISO
// 8601 with milliseconds and Z, as in the seed ("2012-06-30T10:10:10.000Z").
const RecoveryPointTimeLayout = "2006-01-02T15:04:05.000Z"

// FormatRecoveryPointTime writes t as AWS writes VolumeRecoveryPointTime.
func FormatRecoveryPointTime(t time.Time) string {
	return t.UTC().Format(RecoveryPointTimeLayout)
}

// idSource makes the random parts of IDs.
type idSource struct {
	rand io.Reader
}

func (s idSource) hex(nibbles int) (string, error) {
	b := make([]byte, (nibbles+1)/2)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("control: random id: %w", err)
	}
	return hex.EncodeToString(b)[:nibbles], nil
}

// gatewayID is sgw- and 8 upper-case hex digits.
func (s idSource) gatewayID() (string, error) {
	h, err := s.hex(8)
	return "sgw-" + strings.ToUpper(h), err
}

// volumeID is vol- and 17 upper-case hex digits.
func (s idSource) volumeID() (string, error) {
	h, err := s.hex(17)
	return "vol-" + strings.ToUpper(h), err
}

// snapshotID is snap- and 17 lower-case hex digits.
func (s idSource) snapshotID() (string, error) {
	h, err := s.hex(17)
	return "snap-" + h, err
}

// activationKey is five groups of five upper-case alphanumerics, the form a
// real appliance hands out (e.g. 29AV1-3OFV9-VVIUB-NKT0I-LRO6V).
func (s idSource) activationKey() (string, error) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 25)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("control: random activation key: %w", err)
	}
	var sb strings.Builder
	for i, c := range b {
		if i > 0 && i%5 == 0 {
			sb.WriteByte('-')
		}
		// Modulo bias over 36 symbols is irrelevant for a one-time key.
		sb.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return sb.String(), nil
}

var (
	gatewayARNPattern  = regexp.MustCompile(`^arn:aws[a-z-]*:storagegateway:([a-z0-9-]+):(\d{12}):gateway/(sgw-[0-9A-Fa-f]{8})$`)
	volumeARNPattern   = regexp.MustCompile(`^(arn:aws[a-z-]*:storagegateway:[a-z0-9-]+:\d{12}:gateway/sgw-[0-9A-Fa-f]{8})/volume/(vol-[0-9A-Fa-f]{8}(?:[0-9A-Fa-f]{9})?)$`)
	targetARNPattern   = regexp.MustCompile(`^(arn:aws[a-z-]*:storagegateway:[a-z0-9-]+:\d{12}:gateway/sgw-[0-9A-Fa-f]{8})/target/(iqn\.1997-05\.com\.amazon:[a-z0-9.-]+)$`)
	snapshotARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:ec2:[a-z0-9-]+:(\d{12})?:snapshot/(snap-[0-9a-f]{8}(?:[0-9a-f]{9})?)$`)
	// SnapshotIDPattern is the model's pattern for a snapshot ID.
	SnapshotIDPattern = regexp.MustCompile(`^snap-([0-9A-Fa-f]{8}|[0-9A-Fa-f]{17})$`)
)

// parseGatewayARN returns the gateway ID an ARN names, or ok=false.
func parseGatewayARN(arn string) (id string, ok bool) {
	m := gatewayARNPattern.FindStringSubmatch(arn)
	if m == nil {
		return "", false
	}
	return m[3], true
}

// parseVolumeARN returns the gateway ARN and volume ID an ARN names.
func parseVolumeARN(arn string) (gatewayARN, volumeID string, ok bool) {
	m := volumeARNPattern.FindStringSubmatch(arn)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// parseTargetARN returns the gateway ARN and IQN a target ARN names.
func parseTargetARN(arn string) (gatewayARN, iqn string, ok bool) {
	m := targetARNPattern.FindStringSubmatch(arn)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// SnapshotARN is the EC2 ARN of a snapshot, which is what tag operations on
// snapshots name.
func (s *Service) SnapshotARN(snapshotID string) string {
	return fmt.Sprintf("arn:aws:ec2:%s::snapshot/%s", s.region, snapshotID)
}

func (s *Service) gatewayARN(id string) string {
	return fmt.Sprintf("arn:aws:storagegateway:%s:%s:gateway/%s", s.region, s.account, id)
}
