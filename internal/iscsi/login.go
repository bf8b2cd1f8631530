package iscsi

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
)

// Login stages (RFC 7143 11.12.3).
const (
	stageSecurity    = 0
	stageOperational = 1
	stageFullFeature = 3
)

// Login status class and detail (RFC 7143 11.13.5), as one 16-bit value.
const (
	loginSuccess          = 0x0000
	loginInitiatorError   = 0x0200
	loginAuthFailed       = 0x0201
	loginAuthzFailed      = 0x0202
	loginNotFound         = 0x0203
	loginTargetRemoved    = 0x0204
	loginUnsupportedVer   = 0x0205
	loginMissingParam     = 0x0207
	loginSessionNotExist  = 0x020a
	loginInvalidDuringLog = 0x020b
	loginTargetError      = 0x0300
)

// errLoginRefused reports a login that ended with a failure status.
var errLoginRefused = errors.New("iscsi: login refused")

type authState int

const (
	authStart    authState = iota // AuthMethod not yet agreed
	authWaitA                     // CHAP agreed, waiting for CHAP_A
	authWaitResp                  // challenge sent, waiting for CHAP_N/CHAP_R
	authDone
)

// loginConn is the state of one connection's login phase.
type loginConn struct {
	srv *Server
	nc  net.Conn
	br  *bufio.Reader
	bw  *bufio.Writer
	log *slog.Logger

	first     bool
	isid      [6]byte
	tsih      uint16
	itt       uint32
	cid       uint16
	expCmdSN  uint32
	statSN    uint32
	stage     byte
	text      []byte // key text gathered over continued PDUs
	sentFirst bool   // a response has been sent (TPGT goes in the first)

	initiatorName string
	discovery     bool
	tgt           *target
	chap          []CHAPCredential
	auth          authState
	chapSt        chapState
	neg           *negotiator

	// pendingResp and pendingHdr hold the final response until the session
	// is registered and has its TSIH.
	pendingResp []byte
	pendingHdr  header
}

// login runs the login phase and returns a session in full feature phase.
func (s *Server) login(nc net.Conn, br *bufio.Reader, log *slog.Logger) (*session, error) {
	lc := &loginConn{
		srv:   s,
		nc:    nc,
		br:    br,
		bw:    bufio.NewWriterSize(nc, 16<<10),
		log:   log,
		first: true,
		neg:   newNegotiator(s.lim),
	}
	var h header
	for {
		if err := readHeader(br, &h, digests{}); err != nil {
			return nil, err
		}
		if h.opcode() != opLoginReq {
			return nil, fmt.Errorf("%w: opcode %#x during login", ErrProtocol, h.opcode())
		}
		n := h.dataLen()
		if len(lc.text)+n > maxTextLen {
			return nil, lc.fail(&h, loginInitiatorError, "login text too long")
		}
		start := len(lc.text)
		lc.text = append(lc.text, make([]byte, n)...)
		if err := readData(br, lc.text[start:], digests{}); err != nil {
			return nil, err
		}
		done, err := lc.step(&h)
		if err != nil {
			return nil, err
		}
		if done {
			return lc.enterFullFeature()
		}
	}
}

// step handles one Login Request; done reports the move to full feature phase.
func (lc *loginConn) step(h *header) (done bool, err error) {
	b := &h.bhs
	flags := b[1]
	csg := (flags >> 2) & 3
	nsg := flags & 3
	transit := flags&flagTransit != 0
	cont := flags&flagContinue != 0
	if lc.first {
		lc.first = false
		copy(lc.isid[:], b[8:14])
		lc.tsih = be16(b[14:16])
		lc.cid = be16(b[20:22])
		lc.expCmdSN = be32(b[24:28])
		lc.statSN = be32(b[28:32])
		lc.stage = csg
		versionMax, versionMin := b[2], b[3]
		if versionMin > 0 || versionMax < versionMin {
			return false, lc.fail(h, loginUnsupportedVer, "unsupported version")
		}
	}
	lc.itt = h.itt()
	if transit && cont {
		return false, lc.fail(h, loginInitiatorError, "T and C both set")
	}
	if csg != lc.stage && !(csg == stageOperational && lc.stage == stageSecurity) {
		return false, lc.fail(h, loginInitiatorError, "unexpected stage")
	}
	if csg == 2 || csg == stageFullFeature || (transit && (nsg == 2 || nsg <= csg)) {
		return false, lc.fail(h, loginInitiatorError, "invalid stage transition")
	}
	lc.stage = csg
	if cont {
		// More text follows; acknowledge with an empty response.
		return false, lc.respond(h, false, 0, nil, loginSuccess)
	}
	pairs, perr := parseText(lc.text)
	lc.text = lc.text[:0]
	if perr != nil {
		return false, lc.fail(h, loginInitiatorError, perr.Error())
	}
	var resp []byte
	if lc.initiatorName == "" {
		var status uint16
		resp, status = lc.identify(pairs, resp)
		if status != loginSuccess {
			return false, lc.fail(h, status, "identification")
		}
	}
	switch csg {
	case stageSecurity:
		var status uint16
		resp, status = lc.security(pairs, resp)
		if status != loginSuccess {
			return false, lc.fail(h, status, "authentication")
		}
		resp = lc.neg.negotiate(pairs, resp, lc.discovery)
		if transit && lc.auth != authDone {
			// Authentication is not finished; stay in this stage.
			transit = false
		}
	case stageOperational:
		if lc.auth != authDone && len(lc.chap) > 0 && !lc.discovery {
			return false, lc.fail(h, loginAuthFailed, "operational stage before authentication")
		}
		lc.auth = authDone
		resp = lc.neg.negotiate(pairs, resp, lc.discovery)
		resp = lc.neg.declare(resp)
	}
	if transit && nsg == stageFullFeature {
		resp = lc.neg.declare(resp)
	}
	if !transit {
		return false, lc.respond(h, false, 0, resp, loginSuccess)
	}
	if nsg != stageFullFeature {
		err := lc.respond(h, true, nsg, resp, loginSuccess)
		lc.stage = nsg
		return false, err
	}
	// Full feature phase: register the session to learn its TSIH, then answer.
	lc.pendingResp = resp
	lc.pendingHdr = *h
	return true, nil
}

// identify reads the keys of the leading login: who the initiator is and
// which target it wants.
func (lc *loginConn) identify(pairs []kv, resp []byte) ([]byte, uint16) {
	sessionType := "Normal"
	targetName := ""
	for _, p := range pairs {
		switch p.key {
		case "InitiatorName":
			lc.initiatorName = p.value
		case "SessionType":
			sessionType = p.value
		case "TargetName":
			targetName = p.value
		}
	}
	if lc.initiatorName == "" {
		return resp, loginMissingParam
	}
	if lc.tsih != 0 {
		// Adding a connection to an existing session: we allow one
		// connection per session (MaxConnections=1).
		return resp, loginSessionNotExist
	}
	switch sessionType {
	case "Discovery":
		lc.discovery = true
	case "Normal":
		if targetName == "" {
			return resp, loginMissingParam
		}
		t, chap, ok := lc.srv.lookupTarget(targetName)
		if !ok {
			if lc.srv.wasRemoved(targetName) {
				return resp, loginTargetRemoved
			}
			return resp, loginNotFound
		}
		lc.tgt, lc.chap = t, chap
	default:
		return resp, loginInitiatorError
	}
	if !lc.discovery {
		resp = appendText(resp, "TargetPortalGroupTag", strconv.Itoa(int(lc.srv.cfg.PortalGroupTag)))
	}
	return resp, loginSuccess
}

// security runs AuthMethod negotiation and the CHAP exchange.
func (lc *loginConn) security(pairs []kv, resp []byte) ([]byte, uint16) {
	needCHAP := len(lc.chap) > 0 && !lc.discovery
	get := func(k string) (string, bool) {
		for _, p := range pairs {
			if p.key == k {
				return p.value, true
			}
		}
		return "", false
	}
	if v, ok := get("AuthMethod"); ok && lc.auth == authStart {
		offered := strings.Split(v, ",")
		choice := ""
		for _, m := range offered {
			if needCHAP && m == "CHAP" || !needCHAP && m == "None" {
				choice = m
				break
			}
		}
		if choice == "" {
			return appendText(resp, "AuthMethod", valReject), loginAuthFailed
		}
		resp = appendText(resp, "AuthMethod", choice)
		if choice == "None" {
			lc.auth = authDone
		} else {
			lc.auth = authWaitA
		}
		return resp, loginSuccess
	}
	switch lc.auth {
	case authStart:
		if needCHAP {
			// The initiator must offer AuthMethod first.
			return resp, loginAuthFailed
		}
		lc.auth = authDone
	case authWaitA:
		v, ok := get("CHAP_A")
		if !ok {
			return resp, loginAuthFailed
		}
		st, ok := newChallenge(v)
		if !ok {
			return appendText(resp, "CHAP_A", valReject), loginAuthFailed
		}
		lc.chapSt = st
		lc.auth = authWaitResp
		resp = appendText(resp, "CHAP_A", st.alg.id)
		resp = appendText(resp, "CHAP_I", chapIDText(st.id))
		resp = appendText(resp, "CHAP_C", encodeHex(st.challenge))
	case authWaitResp:
		name, okN := get("CHAP_N")
		rv, okR := get("CHAP_R")
		if !okN || !okR {
			return resp, loginAuthFailed
		}
		answer := decodeBinary(rv)
		var cred *CHAPCredential
		for i := range lc.chap {
			c := &lc.chap[i]
			if c.InitiatorName != name && c.InitiatorName != lc.initiatorName {
				continue
			}
			if len(answer) > 0 && lc.chapSt.verify(c.SecretToAuthenticateInitiator, answer) {
				cred = c
				break
			}
		}
		if cred == nil {
			lc.log.Info("iscsi: CHAP authentication failed", "initiator", lc.initiatorName, "chap_n", name)
			return resp, loginAuthFailed
		}
		iv, okI := get("CHAP_I")
		cv, okC := get("CHAP_C")
		if okI || okC {
			// Mutual CHAP: the initiator challenges us.
			id, idOK := parseCHAPID(iv)
			challenge := decodeBinary(cv)
			if !okI || !okC || !idOK || len(challenge) == 0 || cred.SecretToAuthenticateTarget == "" {
				return resp, loginAuthFailed
			}
			if string(challenge) == string(lc.chapSt.challenge) {
				// A reflected challenge (RFC 7143 12.1.3).
				return resp, loginAuthFailed
			}
			r := lc.chapSt.alg.respond(id, cred.SecretToAuthenticateTarget, challenge)
			resp = appendText(resp, "CHAP_N", lc.tgt.iqn)
			resp = appendText(resp, "CHAP_R", encodeHex(r))
		}
		lc.auth = authDone
	}
	return resp, loginSuccess
}

// respond writes a Login Response.
func (lc *loginConn) respond(h *header, transit bool, nsg byte, data []byte, status uint16) error {
	var b [bhsLen]byte
	b[0] = opLoginResp
	flags := lc.stage << 2
	if transit {
		flags |= flagTransit | nsg
	}
	b[1] = flags
	b[2] = 0 // VersionMax
	b[3] = 0 // VersionActive
	putU24(b[5:8], uint32(len(data)))
	copy(b[8:14], lc.isid[:])
	put16(b[14:16], lc.tsih)
	put32(b[16:20], lc.itt)
	put32(b[24:28], lc.statSN)
	if status == loginSuccess {
		lc.statSN++
	}
	put32(b[28:32], lc.expCmdSN)
	put32(b[32:36], lc.expCmdSN+lc.srv.cfg.CommandWindow-1)
	b[36] = byte(status >> 8)
	b[37] = byte(status)
	lc.sentFirst = true
	if _, err := lc.bw.Write(b[:]); err != nil {
		return err
	}
	if _, err := lc.bw.Write(data); err != nil {
		return err
	}
	var pad [4]byte
	if _, err := lc.bw.Write(pad[:padLen(len(data))]); err != nil {
		return err
	}
	return lc.bw.Flush()
}

// fail answers with a failure status; the caller then closes the connection.
func (lc *loginConn) fail(h *header, status uint16, why string) error {
	_ = lc.respond(h, false, 0, nil, status)
	return fmt.Errorf("%w: status %#04x: %s", errLoginRefused, status, why)
}

// enterFullFeature registers the session and sends the final response.
func (lc *loginConn) enterFullFeature() (*session, error) {
	lc.neg.finish()
	ss := newSession(lc)
	tsih, err := lc.srv.register(ss)
	if err != nil {
		status := uint16(loginTargetError)
		if errors.Is(err, ErrTargetNotFound) {
			status = loginNotFound
			if lc.srv.wasRemoved(lc.tgt.iqn) {
				status = loginTargetRemoved
			}
		}
		return nil, lc.fail(&lc.pendingHdr, status, err.Error())
	}
	lc.tsih = tsih
	ss.tsih = tsih
	if err := lc.respond(&lc.pendingHdr, true, stageFullFeature, lc.pendingResp, loginSuccess); err != nil {
		lc.srv.unregister(ss)
		return nil, err
	}
	ss.statSN = lc.statSN
	return ss, nil
}
