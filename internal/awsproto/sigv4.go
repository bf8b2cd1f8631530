package awsproto

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// CredentialStore finds the secret key of an access key ID.
type CredentialStore interface {
	SecretAccessKey(accessKeyID string) (secret string, ok bool)
}

// StaticCredentials maps access key IDs to secret keys.
type StaticCredentials map[string]string

// SecretAccessKey implements CredentialStore.
func (c StaticCredentials) SecretAccessKey(id string) (string, bool) {
	s, ok := c[id]
	return s, ok
}

// MaxClockSkew is how far a request's date may be from the server's clock.
const MaxClockSkew = 15 * time.Minute

const (
	sigV4Algorithm  = "AWS4-HMAC-SHA256"
	amzDateFormat   = "20060102T150405Z"
	scopeDateFormat = "20060102"
	scopeTerminator = "aws4_request"
)

// SigV4Expect is what a request's signature must be scoped to.
type SigV4Expect struct {
	Region  string
	Service string // "storagegateway", "ec2"
	Now     time.Time
}

// authorization is a parsed Authorization header.
type authorization struct {
	AccessKeyID   string
	Date          string // scope date, yyyymmdd
	Region        string
	Service       string
	Terminator    string
	SignedHeaders []string // lower-case, in the client's order
	Signature     string   // lower-case hex
}

// VerifySigV4 checks the SigV4 signature of r, whose body has already been
// read into body. It returns the access key ID that signed the request, or
// an *AuthError saying which check failed. The checks run in the order AWS
// reports them: presence, syntax, date, key, scope, skew, signature.
//
// A request may instead be presigned: the same fields in the query
// (X-Amz-Algorithm, X-Amz-Credential, X-Amz-SignedHeaders, X-Amz-Date,
// X-Amz-Expires, X-Amz-Signature), valid until its expiry.
func VerifySigV4(r *http.Request, body []byte, creds CredentialStore, want SigV4Expect) (string, error) {
	header := r.Header.Get("Authorization")
	query := r.URL.Query()
	presigned := header == "" && query.Has("X-Amz-Algorithm")
	if header == "" && !presigned {
		return "", &AuthError{Failure: AuthMissing, Message: "Missing Authentication Token"}
	}
	var auth authorization
	var reqTime time.Time
	var amzDate string
	var err error
	if presigned {
		auth, reqTime, amzDate, err = parsePresigned(query, want.Now)
	} else {
		auth, err = parseAuthorization(header)
		if err == nil {
			reqTime, amzDate, err = requestTime(r)
		}
	}
	if err != nil {
		return "", err
	}
	secret, ok := creds.SecretAccessKey(auth.AccessKeyID)
	if !ok {
		return "", &AuthError{Failure: AuthUnknownKey, Message: "unknown access key " + auth.AccessKeyID}
	}
	// volgw issues no temporary credentials, so no session token is valid
	// (AWS answers a bad token the same way as an unknown key).
	if r.Header.Get("X-Amz-Security-Token") != "" || query.Get("X-Amz-Security-Token") != "" {
		return "", &AuthError{Failure: AuthUnknownKey, Message: "session token given; volgw issues none"}
	}
	if err := checkScope(auth, reqTime, want); err != nil {
		return "", err
	}
	if !presigned { // a presigned request's window is its own expiry
		if err := checkSkew(reqTime, want.Now); err != nil {
			return "", err
		}
	}
	if !containsHeader(auth.SignedHeaders, "host") {
		return "", &AuthError{Failure: AuthBadSignature,
			Message: "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."}
	}
	payloadHash, err := payloadHash(r, body)
	if err != nil {
		return "", err
	}
	key := signingKey(secret, auth.Date, auth.Region, auth.Service)
	// Clients differ in how they canonicalise a path other than "/" (AWS
	// SDKs normalise it and encode it twice, S3-style signers do neither);
	// every candidate is derived from the path actually requested, so
	// accepting any of them binds the signature to this request all the
	// same.
	for _, uri := range canonicalURIs(r.URL) {
		creq := canonicalRequest(r, uri, auth.SignedHeaders, payloadHash)
		sts := stringToSign(amzDate, credentialScope(auth), creq)
		expected := hex.EncodeToString(hmacSHA256(key, []byte(sts)))
		if hmac.Equal([]byte(expected), []byte(auth.Signature)) {
			return auth.AccessKeyID, nil
		}
	}
	return "", &AuthError{Failure: AuthBadSignature, Message: "The request signature we calculated does not match the " +
		"signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."}
}

// parseAuthorization parses
// "AWS4-HMAC-SHA256 Credential=AK/yyyymmdd/region/service/aws4_request,
// SignedHeaders=a;b, Signature=hex". Components may come in any order and
// with or without spaces after the commas.
func parseAuthorization(h string) (authorization, error) {
	var a authorization
	alg, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if alg != sigV4Algorithm {
		return a, &AuthError{Failure: AuthIncomplete, Message: "Unsupported AWS 'algorithm': '" + alg + "'"}
	}
	fields := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		fields[k] = v
	}
	var missing []string
	for _, k := range []string{"Credential", "Signature", "SignedHeaders"} {
		if fields[k] == "" {
			missing = append(missing, "Authorization header requires '"+k+"' parameter.")
		}
	}
	if len(missing) > 0 {
		return a, &AuthError{Failure: AuthIncomplete, Message: strings.Join(missing, " ") +
			" Authorization=" + h}
	}
	cred := strings.Split(fields["Credential"], "/")
	if len(cred) != 5 || cred[0] == "" {
		return a, &AuthError{Failure: AuthIncomplete, Message: "Credential should be scoped to a valid region. Authorization=" + h}
	}
	a.AccessKeyID, a.Date, a.Region, a.Service, a.Terminator = cred[0], cred[1], cred[2], cred[3], cred[4]
	for _, name := range strings.Split(fields["SignedHeaders"], ";") {
		if name = strings.ToLower(strings.TrimSpace(name)); name != "" {
			a.SignedHeaders = append(a.SignedHeaders, name)
		}
	}
	a.Signature = strings.ToLower(fields["Signature"])
	return a, nil
}

// maxPresignExpiry is the longest validity SigV4 allows a presigned
// request (seven days).
const maxPresignExpiry = 7 * 24 * time.Hour

// parsePresigned reads a presigned request's signature fields from its
// query and checks that it has not expired.
func parsePresigned(q url.Values, now time.Time) (authorization, time.Time, string, error) {
	var a authorization
	if alg := q.Get("X-Amz-Algorithm"); alg != sigV4Algorithm {
		return a, time.Time{}, "", &AuthError{Failure: AuthIncomplete, Message: "Unsupported AWS 'algorithm': '" + alg + "'"}
	}
	var missing []string
	for _, k := range []string{"X-Amz-Credential", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Date"} {
		if q.Get(k) == "" {
			missing = append(missing, "AWS query-string parameters must include '"+k+"'.")
		}
	}
	if len(missing) > 0 {
		return a, time.Time{}, "", &AuthError{Failure: AuthIncomplete, Message: strings.Join(missing, " ") + " Re-examine the query-string parameters."}
	}
	cred := strings.Split(q.Get("X-Amz-Credential"), "/")
	if len(cred) != 5 || cred[0] == "" {
		return a, time.Time{}, "", &AuthError{Failure: AuthIncomplete, Message: "Credential should be scoped to a valid region."}
	}
	a.AccessKeyID, a.Date, a.Region, a.Service, a.Terminator = cred[0], cred[1], cred[2], cred[3], cred[4]
	for _, name := range strings.Split(q.Get("X-Amz-SignedHeaders"), ";") {
		if name = strings.ToLower(strings.TrimSpace(name)); name != "" {
			a.SignedHeaders = append(a.SignedHeaders, name)
		}
	}
	a.Signature = strings.ToLower(q.Get("X-Amz-Signature"))
	amzDate := q.Get("X-Amz-Date")
	t, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return a, time.Time{}, "", &AuthError{Failure: AuthIncomplete,
			Message: "Date must be in ISO-8601 'basic format'. Got '" + amzDate + "'. See http://en.wikipedia.org/wiki/ISO_8601"}
	}
	expires, err := strconv.Atoi(q.Get("X-Amz-Expires"))
	if err != nil || expires <= 0 || time.Duration(expires)*time.Second > maxPresignExpiry {
		return a, time.Time{}, "", &AuthError{Failure: AuthIncomplete,
			Message: "X-Amz-Expires must be a number of seconds from 1 to 604800."}
	}
	if now.After(t.Add(time.Duration(expires) * time.Second)) {
		return a, time.Time{}, "", &AuthError{Failure: AuthExpired, Message: "Signature expired: " + amzDate + " is now earlier than " +
			now.UTC().Add(-time.Duration(expires)*time.Second).Format(amzDateFormat) + " (" + now.UTC().Format(amzDateFormat) +
			" - " + strconv.Itoa(expires) + " sec.)"}
	}
	if t.After(now.Add(MaxClockSkew)) {
		return a, time.Time{}, "", &AuthError{Failure: AuthExpired, Message: "Signature not yet current: " + amzDate +
			" is still later than " + now.UTC().Add(MaxClockSkew).Format(amzDateFormat)}
	}
	return a, t, amzDate, nil
}

// requestTime reads X-Amz-Date, falling back to Date (RFC 1123), as SigV4
// allows. It returns the time and the string that goes into the string to
// sign (always the basic ISO-8601 form).
func requestTime(r *http.Request) (time.Time, string, error) {
	if v := r.Header.Get("X-Amz-Date"); v != "" {
		t, err := time.Parse(amzDateFormat, v)
		if err != nil {
			return time.Time{}, "", &AuthError{Failure: AuthIncomplete,
				Message: "Date must be in ISO-8601 'basic format'. Got '" + v + "'. See http://en.wikipedia.org/wiki/ISO_8601"}
		}
		return t, v, nil
	}
	if v := r.Header.Get("Date"); v != "" {
		t, err := http.ParseTime(v)
		if err != nil {
			return time.Time{}, "", &AuthError{Failure: AuthIncomplete, Message: "Date header '" + v + "' is not a valid HTTP date"}
		}
		return t.UTC(), t.UTC().Format(amzDateFormat), nil
	}
	return time.Time{}, "", &AuthError{Failure: AuthIncomplete,
		Message: "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."}
}

func checkScope(a authorization, reqTime time.Time, want SigV4Expect) error {
	switch {
	case a.Terminator != scopeTerminator:
		return &AuthError{Failure: AuthBadSignature,
			Message: "Credential should be scoped with a valid terminator: 'aws4_request', not '" + a.Terminator + "'."}
	case a.Date != reqTime.Format(scopeDateFormat):
		return &AuthError{Failure: AuthBadSignature,
			Message: "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '" +
				a.Date + "' != '" + reqTime.Format(scopeDateFormat) + "', from '" + reqTime.Format(amzDateFormat) + "'."}
	case want.Service != "" && a.Service != want.Service:
		return &AuthError{Failure: AuthBadSignature,
			Message: "Credential should be scoped to correct service: '" + want.Service + "'. "}
	case want.Region != "" && a.Region != want.Region:
		return &AuthError{Failure: AuthBadSignature,
			Message: "Credential should be scoped to a valid region, not '" + a.Region + "'. "}
	}
	return nil
}

// checkSkew rejects a request dated more than MaxClockSkew from now, with
// AWS's wording.
func checkSkew(reqTime, now time.Time) error {
	now = now.UTC()
	if reqTime.Before(now.Add(-MaxClockSkew)) {
		return &AuthError{Failure: AuthExpired, Message: "Signature expired: " + reqTime.Format(amzDateFormat) +
			" is now earlier than " + now.Add(-MaxClockSkew).Format(amzDateFormat) +
			" (" + now.Format(amzDateFormat) + " - 15 min.)"}
	}
	if reqTime.After(now.Add(MaxClockSkew)) {
		return &AuthError{Failure: AuthExpired, Message: "Signature not yet current: " + reqTime.Format(amzDateFormat) +
			" is still later than " + now.Add(MaxClockSkew).Format(amzDateFormat) +
			" (" + now.Format(amzDateFormat) + " + 15 min.)"}
	}
	return nil
}

// payloadHash is the hex SHA-256 of the body. A client may send it in
// X-Amz-Content-Sha256; then it must be the body's hash (or the literal
// UNSIGNED-PAYLOAD, which is signed as is).
func payloadHash(r *http.Request, body []byte) (string, error) {
	sum := sha256.Sum256(body)
	actual := hex.EncodeToString(sum[:])
	claimed := r.Header.Get("X-Amz-Content-Sha256")
	switch claimed {
	case "":
		return actual, nil
	case "UNSIGNED-PAYLOAD":
		return claimed, nil
	}
	if !strings.EqualFold(claimed, actual) {
		return "", &AuthError{Failure: AuthBadSignature,
			Message: "The provided 'x-amz-content-sha256' header does not match what was computed."}
	}
	return strings.ToLower(claimed), nil
}

// canonicalRequest builds SigV4's canonical request from the headers the
// client listed, in the order listed (SigV4 requires them sorted; a client
// that did not sort them signed exactly what it listed).
func canonicalRequest(r *http.Request, uri string, signed []string, payloadHash string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(uri)
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery, "X-Amz-Signature"))
	b.WriteByte('\n')
	for _, name := range signed {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(canonicalHeaderValue(r, name))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signed, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// canonicalURI is the path, URI-encoded once more on top of its escaped
// form, as every service but S3 signs it.
func canonicalURI(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		return "/"
	}
	return uriEncode(p, false)
}

// canonicalURIs lists the canonical URIs a client may have signed for
// u's path, the SDKs' form (normalised, encoded twice) first: with and
// without dot-segment and double-slash normalisation, encoded twice or
// once. For "/" there is only one.
func canonicalURIs(u *url.URL) []string {
	escaped := u.EscapedPath()
	if escaped == "" || escaped == "/" {
		return []string{"/"}
	}
	normalized := path.Clean(escaped)
	if strings.HasSuffix(escaped, "/") && normalized != "/" {
		normalized += "/"
	}
	var out []string
	for _, c := range []string{uriEncode(normalized, false), canonicalURI(u), normalized, escaped} {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// canonicalQuery sorts the query's parameters by encoded name then value
// and encodes both strictly (space as %20), leaving out the parameter
// named skip (a presigned request's own signature).
func canonicalQuery(raw, skip string) string {
	if raw == "" {
		return ""
	}
	type kv struct{ k, v string }
	var pairs []kv
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			dk = k
		}
		if dk == skip {
			continue
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			dv = v
		}
		pairs = append(pairs, kv{uriEncode(dk, true), uriEncode(dv, true)})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		parts[i] = p.k + "=" + p.v
	}
	return strings.Join(parts, "&")
}

// uriEncode percent-encodes everything but RFC 3986's unreserved
// characters (and '/' unless encodeSlash).
func uriEncode(s string, encodeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/' && !encodeSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

// canonicalHeaderValue joins a header's values with commas, each trimmed
// and with runs of spaces folded to one. Go's server moves Host and
// Content-Length out of the header map; they are read from the request.
func canonicalHeaderValue(r *http.Request, name string) string {
	var values []string
	switch name {
	case "host":
		values = []string{r.Host}
	case "content-length":
		values = r.Header.Values("Content-Length")
		if len(values) == 0 && r.ContentLength >= 0 {
			values = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	default:
		values = r.Header.Values(name)
	}
	folded := make([]string, len(values)) // never edit the request's own slice
	for i, v := range values {
		folded[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(folded, ",")
}

func credentialScope(a authorization) string {
	return a.Date + "/" + a.Region + "/" + a.Service + "/" + a.Terminator
}

func stringToSign(amzDate, scope, creq string) string {
	h := sha256.Sum256([]byte(creq))
	return sigV4Algorithm + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(h[:])
}

func signingKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), []byte(date))
	k = hmacSHA256(k, []byte(region))
	k = hmacSHA256(k, []byte(service))
	return hmacSHA256(k, []byte(scopeTerminator))
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

func containsHeader(list []string, name string) bool {
	for _, h := range list {
		if h == name {
			return true
		}
	}
	return false
}
