package control

import "fmt"

// Keys says which encryption keys the gateway has: the names (KMS key ARNs
// or aliases, as clients pass them in KMSKey) of the keys in its keyring
// (internal/seal). main wires the keyring in; a nil Keys in Config means
// the gateway has no keys, so every KMSKey is refused.
//
// The control plane asks before it commits anything: a volume whose key
// the gateway does not have could never be written, and one restored from
// a snapshot sealed with such a key could never be read.
type Keys interface {
	Has(name string) bool
}

func (s *Service) hasKey(name string) bool { return s.keys != nil && s.keys.Has(name) }

// The two rules AWS states about KMSEncrypted and KMSKey, both
// InvalidGatewayRequestException with errorCode InvalidParameters (the
// ErrorCode enum has no code of its own for keys).
var (
	// AWS's own wording: Storage Gateway answers this, errorCode
	// InvalidParameters, to a request with KMSEncrypted true and no
	// KMSKey (quoted in terraform-provider-aws issue #20766).
	errKMSKeyMissing = invalidParameters("KMSEncrypted is set to true, but KMSKey is missing.")
	// The model documents KMSKey as "This value can only be set when
	// KMSEncrypted is true"; AWS publishes no wording for the refusal, so
	// the message is the model's rule.
	errKMSKeyWithoutEncrypted = invalidParameters("KMSKey can only be set when KMSEncrypted is true.")
)

// checkKMSParameters applies those rules to a request's KMSEncrypted and
// KMSKey. The shape of KMSKey (length 7 to 2048, a KMS key or alias ARN,
// or alias/…) is the model's, checked by awsproto before any handler runs
// (ValidationException, as AWS answers).
func checkKMSParameters(encrypted bool, key string) error {
	switch {
	case encrypted && key == "":
		return errKMSKeyMissing
	case !encrypted && key != "":
		return errKMSKeyWithoutEncrypted
	}
	return nil
}

// errKeyNotFound answers a KMSKey the gateway has no key for. AWS answers
// an unusable key with InvalidGatewayRequestException; its ErrorCode enum
// has nothing closer than InvalidParameters for a parameter that names
// something that cannot be used (the same code as the two rules above).
func errKeyNotFound(key string) *Error {
	return invalidParameters(fmt.Sprintf("The specified KMSKey %s was not found: the gateway has no key by that name.", key))
}

// errSourceKeyUnavailable answers a restore or clone of a snapshot or
// volume sealed with a key the gateway does not have: its data cannot be
// read here.
func errSourceKeyUnavailable(what, key string) *Error {
	return invalidParameters(fmt.Sprintf("%s is encrypted with KMS key %s, which the gateway does not have.", what, key))
}

// errKeyUnavailable is the engine's ErrKeyUnavailable as the API reports
// it (engineError): the engine does not say which key.
var errKeyUnavailable = invalidParameters("An encryption key the operation needs is not available to the gateway.")
