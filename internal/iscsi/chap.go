package iscsi

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"strconv"
	"strings"
)

// CHAPCredential lets one initiator log in to a target with CHAP (RFC 1994
// as profiled by RFC 7143 12.1.3). It follows AWS Storage Gateway's
// UpdateChapCredentials: the initiator proves it knows
// SecretToAuthenticateInitiator; when SecretToAuthenticateTarget is set the
// initiator may also challenge the target (mutual CHAP), which answers with
// that secret.
type CHAPCredential struct {
	// InitiatorName is the iSCSI name of the initiator. The CHAP_N the
	// initiator sends must be this name, or the initiator must log in
	// under this name.
	InitiatorName                 string
	SecretToAuthenticateInitiator string
	SecretToAuthenticateTarget    string
}

// chapAlgorithm is one CHAP_A digest (IANA PPP authentication algorithms).
type chapAlgorithm struct {
	id   string
	hash func() hash.Hash
}

// chapAlgorithms lists the digests we accept, in our order of preference
// among those the initiator offers: the initiator's order decides.
var chapAlgorithms = [...]chapAlgorithm{
	{"5", md5.New},
	{"6", sha1.New},
	{"7", sha256.New},
}

func chapAlgorithmByID(id string) (chapAlgorithm, bool) {
	for _, a := range chapAlgorithms {
		if a.id == id {
			return a, true
		}
	}
	return chapAlgorithm{}, false
}

// chapState is the target side of one CHAP exchange.
type chapState struct {
	alg       chapAlgorithm
	id        byte
	challenge []byte
}

// newChallenge picks an algorithm from the initiator's CHAP_A list and
// makes a fresh challenge. ok is false when no offered algorithm is known.
func newChallenge(offer string) (st chapState, ok bool) {
	for _, a := range strings.Split(offer, ",") {
		if alg, found := chapAlgorithmByID(strings.TrimSpace(a)); found {
			st.alg = alg
			ok = true
			break
		}
	}
	if !ok {
		return st, false
	}
	var b [1]byte
	_, _ = rand.Read(b[:])
	st.id = b[0]
	// A challenge as long as the digest, as RFC 7143 12.1.3 recommends.
	st.challenge = make([]byte, st.alg.hash().Size())
	_, _ = rand.Read(st.challenge)
	return st, true
}

// respond computes the CHAP response H(id || secret || challenge).
func (a chapAlgorithm) respond(id byte, secret string, challenge []byte) []byte {
	h := a.hash()
	h.Write([]byte{id})
	h.Write([]byte(secret))
	h.Write(challenge)
	return h.Sum(nil)
}

// verify reports whether resp answers our challenge with secret.
func (st *chapState) verify(secret string, resp []byte) bool {
	want := st.alg.respond(st.id, secret, st.challenge)
	return subtle.ConstantTimeCompare(want, resp) == 1
}

// decodeBinary decodes a CHAP binary value: 0x hex or 0b base64
// (RFC 7143 6.1). Nil when malformed or empty.
func decodeBinary(v string) []byte {
	if len(v) < 3 {
		return nil
	}
	switch v[:2] {
	case "0x", "0X":
		s := v[2:]
		if len(s)%2 == 1 {
			s = "0" + s
		}
		b, err := hex.DecodeString(s)
		if err != nil {
			return nil
		}
		return b
	case "0b", "0B":
		b, err := base64.StdEncoding.DecodeString(v[2:])
		if err != nil {
			return nil
		}
		return b
	}
	return nil
}

func encodeHex(b []byte) string { return "0x" + hex.EncodeToString(b) }

// parseCHAPID parses CHAP_I, a decimal (or hex) number 0..255.
func parseCHAPID(v string) (byte, bool) {
	n, ok := parseNumber(v, 0, 255)
	return byte(n), ok
}

func chapIDText(id byte) string { return strconv.Itoa(int(id)) }
