package iscsi

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Text keys are key=value pairs, each ended by a NUL (RFC 7143 6.1).
// Limits from the same section: keys at most 63 bytes, values at most 255
// bytes except a few (CHAP challenges and responses) that may reach 8192.
const (
	maxKeyLen   = 63
	maxValueLen = 8192
	// maxTextLen bounds a whole key set gathered over continued PDUs.
	maxTextLen = 64 << 10
)

// ErrBadText is returned for a text segment that cannot be parsed.
var ErrBadText = errors.New("iscsi: malformed text key")

// kv is one key=value pair, kept in the order received.
type kv struct{ key, value string }

// parseText splits a text data segment into pairs. A trailing fragment
// without a NUL is accepted as the last pair (some initiators omit the
// final NUL). Duplicate keys are an error (RFC 7143 6.1: a key may be sent
// at most once per negotiation unless it is list-valued by definition).
func parseText(data []byte) ([]kv, error) {
	var out []kv
	for len(data) > 0 {
		var item []byte
		if i := bytes.IndexByte(data, 0); i >= 0 {
			item, data = data[:i], data[i+1:]
		} else {
			item, data = data, nil
		}
		if len(item) == 0 {
			// Padding NULs after the last pair.
			continue
		}
		eq := bytes.IndexByte(item, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("%w: %q has no key=value form", ErrBadText, truncateForLog(item))
		}
		if eq > maxKeyLen {
			return nil, fmt.Errorf("%w: key longer than %d bytes", ErrBadText, maxKeyLen)
		}
		if len(item)-eq-1 > maxValueLen {
			return nil, fmt.Errorf("%w: value of %q longer than %d bytes", ErrBadText, item[:eq], maxValueLen)
		}
		k := string(item[:eq])
		for _, p := range out {
			if p.key == k {
				return nil, fmt.Errorf("%w: key %q repeated", ErrBadText, k)
			}
		}
		out = append(out, kv{k, string(item[eq+1:])})
	}
	return out, nil
}

func truncateForLog(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// appendText appends key=value\0.
func appendText(dst []byte, key, value string) []byte {
	dst = append(dst, key...)
	dst = append(dst, '=')
	dst = append(dst, value...)
	return append(dst, 0)
}

// Special values (RFC 7143 6.2).
const (
	valNotUnderstood = "NotUnderstood"
	valIrrelevant    = "Irrelevant"
	valReject        = "Reject"
)

// sessionParams are the negotiated operational parameters that hold for
// the whole session (RFC 7143 13), and connParams those of one connection.
// Zero values are never used: defaults() fills in RFC defaults first.
type sessionParams struct {
	MaxBurstLength      uint32
	FirstBurstLength    uint32
	InitialR2T          bool
	ImmediateData       bool
	MaxOutstandingR2T   uint32
	DataPDUInOrder      bool
	DataSequenceInOrder bool
	ErrorRecoveryLevel  uint32
	DefaultTime2Wait    uint32
	DefaultTime2Retain  uint32
	MaxConnections      uint32
}

type connParams struct {
	digests
	// SendLimit is the initiator's MaxRecvDataSegmentLength: the most we
	// may put in one data segment we send.
	SendLimit uint32
}

// rfcDefaults are the values in force for keys nobody negotiated.
func rfcDefaults() (sessionParams, connParams) {
	return sessionParams{
			MaxBurstLength:      262144,
			FirstBurstLength:    65536,
			InitialR2T:          true,
			ImmediateData:       true,
			MaxOutstandingR2T:   1,
			DataPDUInOrder:      true,
			DataSequenceInOrder: true,
			ErrorRecoveryLevel:  0,
			DefaultTime2Wait:    2,
			DefaultTime2Retain:  20,
			MaxConnections:      1,
		}, connParams{
			SendLimit: 8192,
		}
}

// targetLimits is what this target offers in negotiation: the upper bounds
// for "min" keys and its preferences for boolean keys.
type targetLimits struct {
	MaxRecvDataSegmentLength uint32 // declared to the initiator
	MaxBurstLength           uint32
	FirstBurstLength         uint32
	MaxOutstandingR2T        uint32
}

// negotiator answers one side of operational parameter negotiation. It
// keeps the values agreed so far; the caller applies them when the phase
// that negotiated them ends.
type negotiator struct {
	lim  targetLimits
	sess sessionParams
	conn connParams
	// declared records that we sent our MaxRecvDataSegmentLength.
	declared bool
	// answerMaxBurst and answerFirstBurst record that the keys being
	// negotiated include them.
	answerMaxBurst, answerFirstBurst bool
}

func newNegotiator(lim targetLimits) *negotiator {
	s, c := rfcDefaults()
	return &negotiator{lim: lim, sess: s, conn: c}
}

// negotiate answers each operational key in pairs. Keys handled by the
// caller (security keys, declaratives such as InitiatorName) are skipped;
// unknown keys are answered NotUnderstood. It returns the response pairs.
//
// MaxBurstLength and FirstBurstLength are answered after the other keys,
// once both are known, so that the FirstBurstLength we answer is the one
// we apply: never above MaxBurstLength (RFC 7143 13.14).
func (n *negotiator) negotiate(pairs []kv, resp []byte, discovery bool) []byte {
	n.answerMaxBurst, n.answerFirstBurst = false, false
	for _, p := range pairs {
		resp = n.negotiateOne(p, resp, discovery)
	}
	n.finish()
	if n.answerMaxBurst {
		resp = appendText(resp, "MaxBurstLength", strconv.FormatUint(uint64(n.sess.MaxBurstLength), 10))
	}
	if n.answerFirstBurst {
		resp = appendText(resp, "FirstBurstLength", strconv.FormatUint(uint64(n.sess.FirstBurstLength), 10))
	}
	return resp
}

func (n *negotiator) negotiateOne(p kv, resp []byte, discovery bool) []byte {
	k, v := p.key, p.value
	if v == valNotUnderstood || v == valIrrelevant || v == valReject {
		// A reply to a key we offered; we offer none but MaxRecvDataSegmentLength,
		// which is declarative, so nothing changes.
		return resp
	}
	switch k {
	case "InitiatorName", "InitiatorAlias", "TargetName", "SessionType",
		"AuthMethod", "CHAP_A", "CHAP_N", "CHAP_R", "CHAP_I", "CHAP_C",
		"TargetAlias", "TargetAddress", "TargetPortalGroupTag", "SendTargets":
		// Handled by the login or text phase itself.
		return resp
	case "HeaderDigest", "DataDigest":
		choice := ""
		for _, opt := range strings.Split(v, ",") {
			if opt == "CRC32C" || opt == "None" {
				choice = opt
				break
			}
		}
		if choice == "" {
			return appendText(resp, k, valReject)
		}
		on := choice == "CRC32C"
		if k == "HeaderDigest" {
			n.conn.header = on
		} else {
			n.conn.data = on
		}
		return appendText(resp, k, choice)
	case "MaxRecvDataSegmentLength":
		// Declarative: an out-of-range value leaves the default in force.
		// It gets no answer, since our own declaration uses the same key.
		if x, ok := parseNumber(v, 512, 1<<24-1); ok {
			n.conn.SendLimit = x
		}
		return resp
	case "MaxConnections":
		if _, ok := parseNumber(v, 1, 65535); !ok {
			return appendText(resp, k, valReject)
		}
		n.sess.MaxConnections = 1
		return appendText(resp, k, "1")
	case "InitialR2T", "DataPDUInOrder", "DataSequenceInOrder":
		b, ok := parseBool(v)
		if !ok {
			return appendText(resp, k, valReject)
		}
		if discovery {
			return appendText(resp, k, valIrrelevant)
		}
		switch k {
		case "InitialR2T":
			// Result function OR; we are happy with No (unsolicited data).
			n.sess.InitialR2T = b
		case "DataPDUInOrder":
			// OR with our Yes: always Yes.
			b = true
			n.sess.DataPDUInOrder = b
		case "DataSequenceInOrder":
			b = true
			n.sess.DataSequenceInOrder = b
		}
		return appendText(resp, k, boolText(b))
	case "ImmediateData":
		b, ok := parseBool(v)
		if !ok {
			return appendText(resp, k, valReject)
		}
		if discovery {
			return appendText(resp, k, valIrrelevant)
		}
		n.sess.ImmediateData = b // AND with our Yes
		return appendText(resp, k, boolText(b))
	case "IFMarker", "OFMarker":
		if _, ok := parseBool(v); !ok {
			return appendText(resp, k, valReject)
		}
		return appendText(resp, k, "No") // AND with our No
	case "IFMarkInt", "OFMarkInt":
		return appendText(resp, k, valIrrelevant)
	case "MaxBurstLength", "FirstBurstLength":
		x, ok := parseNumber(v, 512, 1<<24-1)
		if !ok {
			return appendText(resp, k, valReject)
		}
		if discovery {
			return appendText(resp, k, valIrrelevant)
		}
		if k == "MaxBurstLength" {
			n.sess.MaxBurstLength = min(x, n.lim.MaxBurstLength)
			n.answerMaxBurst = true
		} else {
			n.sess.FirstBurstLength = min(x, n.lim.FirstBurstLength)
			n.answerFirstBurst = true
		}
		return resp // answered by negotiate, after the other keys
	case "MaxOutstandingR2T":
		x, ok := parseNumber(v, 1, 65535)
		if !ok {
			return appendText(resp, k, valReject)
		}
		if discovery {
			return appendText(resp, k, valIrrelevant)
		}
		x = min(x, n.lim.MaxOutstandingR2T)
		n.sess.MaxOutstandingR2T = x
		return appendText(resp, k, strconv.FormatUint(uint64(x), 10))
	case "ErrorRecoveryLevel":
		if _, ok := parseNumber(v, 0, 2); !ok {
			return appendText(resp, k, valReject)
		}
		n.sess.ErrorRecoveryLevel = 0 // min with ours
		return appendText(resp, k, "0")
	case "DefaultTime2Wait":
		x, ok := parseNumber(v, 0, 3600)
		if !ok {
			return appendText(resp, k, valReject)
		}
		// max(x, 0): we need no wait before reconnecting.
		n.sess.DefaultTime2Wait = x
		return appendText(resp, k, strconv.FormatUint(uint64(x), 10))
	case "DefaultTime2Retain":
		x, ok := parseNumber(v, 0, 3600)
		if !ok {
			return appendText(resp, k, valReject)
		}
		// min(x, 0): at ERL 0 no task outlives its connection.
		_ = x
		n.sess.DefaultTime2Retain = 0
		return appendText(resp, k, "0")
	case "TaskReporting":
		return appendText(resp, k, "RFC3720")
	case "iSCSIProtocolLevel":
		if _, ok := parseNumber(v, 0, 31); !ok {
			return appendText(resp, k, valReject)
		}
		// We implement RFC 7143 and none of RFC 7144's additions.
		return appendText(resp, k, "1")
	}
	return appendText(resp, k, valNotUnderstood)
}

// declare appends our declarative keys once per login.
func (n *negotiator) declare(resp []byte) []byte {
	if n.declared {
		return resp
	}
	n.declared = true
	return appendText(resp, "MaxRecvDataSegmentLength", strconv.FormatUint(uint64(n.lim.MaxRecvDataSegmentLength), 10))
}

// finish enforces cross-key rules once negotiation ends.
func (n *negotiator) finish() {
	if n.sess.FirstBurstLength > n.sess.MaxBurstLength {
		// RFC 7143 13.14: FirstBurstLength MUST NOT exceed MaxBurstLength.
		n.sess.FirstBurstLength = n.sess.MaxBurstLength
	}
}

func parseBool(v string) (bool, bool) {
	switch v {
	case "Yes":
		return true, true
	case "No":
		return false, true
	}
	return false, false
}

func boolText(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

// parseNumber parses a decimal (or 0x hex) numerical value within [lo, hi].
func parseNumber(v string, lo, hi uint32) (uint32, bool) {
	var x uint64
	var err error
	if strings.HasPrefix(v, "0x") || strings.HasPrefix(v, "0X") {
		x, err = strconv.ParseUint(v[2:], 16, 32)
	} else {
		x, err = strconv.ParseUint(v, 10, 32)
	}
	if err != nil || x < uint64(lo) || x > uint64(hi) {
		return 0, false
	}
	return uint32(x), true
}
