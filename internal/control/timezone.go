package control

import (
	"regexp"
	"strconv"
	"time"
)

// gatewayTimezone is the form AWS documents for GatewayTimezone: "GMT",
// "GMT-hr:mm" or "GMT+hr:mm" (GMT-4:00, GMT+2:00, GMT+5:30).
var gatewayTimezone = regexp.MustCompile(`^GMT(?:([+-])(\d{1,2}):(\d{2}))?$`)

// The offsets of the world's time zones run from GMT-12:00 to GMT+14:00.
const (
	minTimezoneOffset = -12 * 3600
	maxTimezoneOffset = 14 * 3600
)

var errTimezone = invalidParameters(`The specified time zone is not valid. The time zone is of the format "GMT", "GMT-hr:mm", or "GMT+hr:mm".`)

// parseTimezone returns the offset east of GMT, in seconds, of a Storage
// Gateway time zone, or ok=false for anything AWS would refuse.
func parseTimezone(tz string) (offset int, ok bool) {
	m := gatewayTimezone.FindStringSubmatch(tz)
	if m == nil {
		return 0, false
	}
	if m[1] == "" {
		return 0, true
	}
	h, _ := strconv.Atoi(m[2])
	mm, _ := strconv.Atoi(m[3])
	if mm > 59 {
		return 0, false
	}
	offset = h*3600 + mm*60
	if m[1] == "-" {
		offset = -offset
	}
	return offset, offset >= minTimezoneOffset && offset <= maxTimezoneOffset
}

// checkTimezone refuses a GatewayTimezone AWS would refuse, so that every
// time zone the catalog holds is one gatewayLocation understands.
func checkTimezone(tz string) error {
	if _, ok := parseTimezone(tz); !ok {
		return errTimezone
	}
	return nil
}

// gatewayLocation is the location of a Storage Gateway time zone. Only
// time zones checkTimezone accepted reach the catalog; a record that holds
// anything else (written by an older volgw, which accepted any string) is
// read as GMT, which is what that volgw did with it.
func gatewayLocation(tz string) *time.Location {
	offset, ok := parseTimezone(tz)
	if !ok || offset == 0 {
		return time.UTC
	}
	return time.FixedZone(tz, offset)
}
