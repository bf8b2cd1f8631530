package iscsi

import (
	"errors"
	"net"
	"strconv"
)

// handleText answers a Text Request (RFC 7143 11.10): SendTargets in
// discovery and normal sessions, and the declarative keys an initiator may
// renegotiate in full feature phase. A reply longer than the initiator's
// MaxRecvDataSegmentLength goes out in pieces, each fetched by an empty
// Text Request carrying our Target Transfer Tag.
func (ss *session) handleText(h *header) error {
	n := h.dataLen()
	if len(ss.textIn)+n > maxTextLen {
		return errors.New("iscsi: text request too long")
	}
	start := len(ss.textIn)
	ss.textIn = append(ss.textIn, make([]byte, n)...)
	if err := readData(ss.br, ss.textIn[start:], ss.cp.digests); err != nil {
		if errors.Is(err, errDataDigest) {
			ss.textIn = ss.textIn[:start]
			ss.sendReject(h, rejectDataDigest)
			return nil
		}
		return err
	}
	if !ss.admit(h) {
		ss.textIn = ss.textIn[:start]
		return nil
	}
	itt := h.itt()
	if h.flags()&flagContinue != 0 {
		// More keys follow: acknowledge with an empty response.
		ss.sendText(itt, nextTag(&ss.textTTT), nil, false)
		return nil
	}
	if h.ttt() != reservedTag && h.ttt() == ss.textTTT && len(ss.textCont) > 0 && len(ss.textIn) == 0 {
		ss.sendTextPiece(itt)
		return nil
	}
	pairs, err := parseText(ss.textIn)
	ss.textIn = ss.textIn[:0]
	ss.textCont = nil
	if err != nil {
		ss.sendReject(h, rejectInvalidField)
		return nil
	}
	var resp []byte
	var others []kv
	for _, p := range pairs {
		switch p.key {
		case "SendTargets":
			resp = ss.sendTargets(resp, p.value)
		case "MaxRecvDataSegmentLength":
			// Declarative: applies to what we send from now on; an
			// out-of-range value is ignored.
			if x, ok := parseNumber(p.value, 512, 1<<24-1); ok {
				ss.sendLimit.Store(x)
			}
		default:
			others = append(others, p)
		}
	}
	// Session-wide operational keys cannot change in full feature phase
	// (RFC 7143 13: "LO" keys); answer them as in login but apply nothing.
	resp = newNegotiator(ss.srv.lim).negotiate(others, resp, ss.discovery)
	ss.textCont = resp
	ss.sendTextPiece(itt)
	return nil
}

// sendTextPiece sends the next piece of a pending text reply.
func (ss *session) sendTextPiece(itt uint32) {
	lim := int(ss.sendLimit.Load())
	piece := ss.textCont
	more := len(piece) > lim
	if more {
		piece = piece[:lim]
		ss.textCont = ss.textCont[lim:]
		ss.sendText(itt, nextTag(&ss.textTTT), piece, true)
		return
	}
	ss.textCont = nil
	ss.sendText(itt, reservedTag, piece, false)
}

func nextTag(t *uint32) uint32 {
	*t++
	if *t == reservedTag || *t == 0 {
		*t = 1
	}
	return *t
}

func (ss *session) sendText(itt, ttt uint32, data []byte, cont bool) {
	p := newOut()
	p.bhs[0] = opTextResp
	if cont {
		p.bhs[1] = flagContinue
	} else {
		p.bhs[1] = flagFinal
	}
	put32(p.bhs[16:20], itt)
	put32(p.bhs[20:24], ttt)
	if len(data) > 0 {
		p.own = append([]byte(nil), data...)
		p.data = p.own
	}
	p.sn = snAdvance
	ss.send(p)
}

// sendTargets answers SendTargets=All (every target in a discovery
// session, this session's target in a normal one), =<name> (that target)
// or = (this session's target). The portal is the address the initiator
// reached us on.
func (ss *session) sendTargets(resp []byte, which string) []byte {
	var names []string
	switch {
	case which == "All" && ss.discovery:
		names = ss.srv.targetNames()
	case which == "All" || which == "":
		if ss.tgt != nil {
			names = []string{ss.tgt.iqn}
		}
	default:
		if _, _, ok := ss.srv.lookupTarget(which); ok && (ss.discovery || ss.tgt.iqn == which) {
			names = []string{which}
		}
	}
	portal := portalText(ss.nc.LocalAddr()) + "," + strconv.Itoa(int(ss.srv.cfg.PortalGroupTag))
	for _, n := range names {
		resp = appendText(resp, "TargetName", n)
		resp = appendText(resp, "TargetAddress", portal)
	}
	return resp
}

// portalText formats an address as RFC 7143 13.8 wants: IPv6 in brackets.
func portalText(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return net.JoinHostPort(ta.IP.String(), strconv.Itoa(ta.Port))
	}
	return a.String()
}
