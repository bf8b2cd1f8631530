package awsproto

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

var (
	sgwModelOnce sync.Once
	sgwModel     *Model
	sgwModelErr  error
)

// storageGatewayModel loads the botocore model copied unchanged into
// testdata, with Storage Gateway's documented 50-tag limit.
func storageGatewayModel(t testing.TB) *Model {
	t.Helper()
	sgwModelOnce.Do(func() {
		data, err := os.ReadFile("testdata/storagegateway-2013-06-30.service.json")
		if err != nil {
			sgwModelErr = err
			return
		}
		sgwModel, sgwModelErr = LoadModel(data, WithListMax("Tags", 50))
	})
	if sgwModelErr != nil {
		t.Fatal(sgwModelErr)
	}
	return sgwModel
}

func TestModelLoadsEveryOperationAndPattern(t *testing.T) {
	m := storageGatewayModel(t)
	if n := len(m.OperationNames()); n != 96 {
		t.Fatalf("%d operations, want 96", n)
	}
	if m.Metadata.TargetPrefix != "StorageGateway_20130630" {
		t.Fatalf("target prefix %q", m.Metadata.TargetPrefix)
	}
	for p, match := range m.patterns {
		if match == nil {
			t.Fatalf("pattern %q has no matcher", p)
		}
	}
	if len(m.patterns) != 20 {
		t.Fatalf("%d patterns, want the model's 20", len(m.patterns))
	}
}

const volARN = "arn:aws:storagegateway:us-east-2:111122223333:gateway/sgw-12A3456B/volume/vol-1122AABB"

func validationMessage(t *testing.T, m *Model, op, input string) string {
	t.Helper()
	err := m.Validate(op, []byte(input))
	if err == nil {
		return ""
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Validate(%s) = %v, not an *Error", input, err)
	}
	if e.Type == TypeSerialization {
		return "SerializationException: " + e.Message
	}
	if e.Type != TypeValidation || e.Status != 400 {
		t.Fatalf("Validate(%s) = %+v", input, e)
	}
	return e.Message
}

func tagsJSON(n int, key, value string) string {
	tags := make([]map[string]string, n)
	for i := range tags {
		tags[i] = map[string]string{"Key": key, "Value": value}
	}
	b, _ := json.Marshal(tags)
	return string(b)
}

func TestValidateSeedConstraints(t *testing.T) {
	m := storageGatewayModel(t)
	const op = "CreateSnapshotFromVolumeRecoveryPoint"
	long := strings.Repeat("d", 256)
	cases := []struct {
		name, input, want string
	}{
		{"valid", `{"VolumeARN":"` + volARN + `","SnapshotDescription":"snapshot description"}`, ""},
		{"valid tags", `{"VolumeARN":"` + volARN + `","SnapshotDescription":"d","Tags":` + tagsJSON(50, "k +-=._:/@ é 1", strings.Repeat("v", 256)) + `}`, ""},
		{"missing both", `{}`,
			"2 validation errors detected: Value null at 'volumeARN' failed to satisfy constraint: Member must not be null; " +
				"Value null at 'snapshotDescription' failed to satisfy constraint: Member must not be null"},
		{"empty description", `{"VolumeARN":"` + volARN + `","SnapshotDescription":""}`,
			"1 validation error detected: Value '' at 'snapshotDescription' failed to satisfy constraint: Member must have length greater than or equal to 1"},
		{"256-char description", `{"VolumeARN":"` + volARN + `","SnapshotDescription":"` + long + `"}`,
			"1 validation error detected: Value '" + long + "' at 'snapshotDescription' failed to satisfy constraint: Member must have length less than or equal to 255"},
		{"bad tag key", `{"VolumeARN":"` + volARN + `","SnapshotDescription":"d","Tags":[{"Key":"a","Value":"b"},{"Key":"bad#key","Value":"v"}]}`,
			"1 validation error detected: Value 'bad#key' at 'tags.2.member.key' failed to satisfy constraint: Member must satisfy regular expression pattern: ^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$"},
		{"129-char key", `{"VolumeARN":"` + volARN + `","SnapshotDescription":"d","Tags":[{"Key":"` + strings.Repeat("k", 129) + `","Value":"v"}]}`,
			"1 validation error detected: Value '" + strings.Repeat("k", 129) + "' at 'tags.1.member.key' failed to satisfy constraint: Member must have length less than or equal to 128"},
		{"257-char value", `{"VolumeARN":"` + volARN + `","SnapshotDescription":"d","Tags":[{"Key":"k","Value":"` + strings.Repeat("v", 257) + `"}]}`,
			"1 validation error detected: Value '" + strings.Repeat("v", 257) + "' at 'tags.1.member.value' failed to satisfy constraint: Member must have length less than or equal to 256"},
		{"tag without value", `{"VolumeARN":"` + volARN + `","SnapshotDescription":"d","Tags":[{"Key":"k"}]}`,
			"1 validation error detected: Value null at 'tags.1.member.value' failed to satisfy constraint: Member must not be null"},
		{"bad ARN pattern", `{"VolumeARN":"arn:aws:storagegateway:us-east-2:111122223333:gateway/sgw-12A3456B/vol-1122AABB","SnapshotDescription":"d"}`,
			"1 validation error detected: Value 'arn:aws:storagegateway:us-east-2:111122223333:gateway/sgw-12A3456B/vol-1122AABB' at 'volumeARN' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:(aws(|-cn|-us-gov|-iso[A-Za-z0-9_-]*|-eusc)):storagegateway:[a-z\\-0-9]+:[0-9]+:gateway\\/(.+)\\/volume\\/vol-(\\S+)"},
		{"number for string", `{"VolumeARN":5,"SnapshotDescription":"d"}`, "SerializationException: NUMBER_VALUE can not be converted to a String"},
		{"object for list", `{"VolumeARN":"` + volARN + `","SnapshotDescription":"d","Tags":{}}`, "SerializationException: Start of structure or map found where not expected."},
		{"not JSON", `{"VolumeARN":`, "SerializationException: "},
		{"array body", `[]`, "SerializationException: START_ARRAY can not be converted to a Structure"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := validationMessage(t, m, op, c.input); got != c.want {
				t.Fatalf("got  %q\nwant %q", got, c.want)
			}
		})
	}

	// 51 tags: the 50-tag limit added with WithListMax, reported as a
	// length constraint on the list.
	got := validationMessage(t, m, op, `{"VolumeARN":"`+volARN+`","SnapshotDescription":"d","Tags":`+tagsJSON(51, "k", "v")+`}`)
	if !strings.HasPrefix(got, "1 validation error detected: Value '[{key=k, value=v}, ") ||
		!strings.HasSuffix(got, "' at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50") {
		t.Fatalf("51 tags: %q", got)
	}

	// VolumeARN 49 chars: too short and not matching the pattern; 501
	// chars: too long (and matching). Both constraints are listed.
	short := "arn:aws:storagegateway:us-east-2:1:gateway/sgw-1/" // 49 chars
	if len(short) != 49 {
		t.Fatalf("short ARN is %d chars", len(short))
	}
	got = validationMessage(t, m, op, `{"VolumeARN":"`+short+`","SnapshotDescription":"d"}`)
	if !strings.HasPrefix(got, "2 validation errors detected: Value '"+short+"' at 'volumeARN' failed to satisfy constraint: Member must have length greater than or equal to 50; Value '"+short+"' at 'volumeARN' failed to satisfy constraint: Member must satisfy regular expression pattern: ") {
		t.Fatalf("49-char ARN: %q", got)
	}
	longARN := volARN + strings.Repeat("F", 501-len(volARN))
	got = validationMessage(t, m, op, `{"VolumeARN":"`+longARN+`","SnapshotDescription":"d"}`)
	if got != "1 validation error detected: Value '"+longARN+"' at 'volumeARN' failed to satisfy constraint: Member must have length less than or equal to 500" {
		t.Fatalf("501-char ARN: %q", got)
	}
}

func TestValidateRangesEnumsAndNesting(t *testing.T) {
	m := storageGatewayModel(t)
	cases := []struct{ op, input, want string }{
		{"ListGateways", `{"Limit":0}`,
			"1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"},
		{"ListGateways", `{"Limit":1.5}`, "SerializationException: NUMBER_VALUE can not be converted to an Integer"},
		{"ListGateways", `{"Limit":"1"}`, "SerializationException: STRING_VALUE can not be converted to an Integer"},
		{"ListGateways", `{"Limit":1}`, ""},
		{"ListGateways", ``, ""},
		{"ActivateGateway", `{"ActivationKey":"A","GatewayName":"gw","GatewayTimezone":"GMT","GatewayRegion":"us-east-1","GatewayType":"CACHED","TapeDriveType":"IBM-ULT3580-TD5"}`, ""},
		{"UpdateSnapshotSchedule", `{"VolumeARN":"` + volARN + `","StartAt":24,"RecurrenceInHours":25}`,
			"2 validation errors detected: Value '24' at 'startAt' failed to satisfy constraint: Member must have value less than or equal to 23; " +
				"Value '25' at 'recurrenceInHours' failed to satisfy constraint: Member must have value less than or equal to 24"},
		{"UpdateSMBSecurityStrategy", `{"GatewayARN":"arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B","SMBSecurityStrategy":"Nope"}`,
			"1 validation error detected: Value 'Nope' at 'sMBSecurityStrategy' failed to satisfy constraint: Member must satisfy enum value set: [ClientSpecified, MandatorySigning, MandatoryEncryption, MandatoryEncryptionNoAes128]"},
	}
	for _, c := range cases {
		if got := validationMessage(t, m, c.op, c.input); got != c.want {
			t.Errorf("%s %s:\ngot  %q\nwant %q", c.op, c.input, got, c.want)
		}
	}
	if err := m.Validate("NoSuchOperation", nil); !errors.Is(err, ErrUnknownOperation) {
		t.Fatalf("unknown op: %v", err)
	}
}

// TestTranslatedPatterns checks the model patterns that Go's RE2 cannot
// compile against values each alternative must accept or refuse.
func TestTranslatedPatterns(t *testing.T) {
	m := storageGatewayModel(t)
	check := func(shapeName string, accept, refuse []string) {
		t.Helper()
		match := m.patterns[m.shapes[shapeName].Pattern]
		for _, v := range accept {
			if !match(v) {
				t.Errorf("%s refused %q", shapeName, v)
			}
		}
		for _, v := range refuse {
			if match(v) {
				t.Errorf("%s accepted %q", shapeName, v)
			}
		}
	}
	check("IPV4Address", []string{"10.0.0.1", "255.255.255.255", "0.0.0.0"},
		[]string{"10.0.0.", "256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "a.b.c.d"})
	check("Host", []string{"example.com", "example.com:443", "10.0.0.1:80", "[::1]:389", "fe80::1", "::ffff:1.2.3.4"},
		[]string{"ex ample", "[::1]", "[::1]:x", "fe80::1%eth0", "-"})
	check("Ipv4OrIpv6AddressCIDR", []string{"10.0.0.0/8", "10.1.2.3", "2001:db8::/32", "::1", "2001:db8::/128"},
		[]string{"10.0.0.0/33", "2001:db8::/129", "2001:db8::/01", "10.0.0", "x"})
}

// syntheticModel has one member of every shape type botocore models use.
const syntheticModel = `{
  "metadata": {"apiVersion": "2000-01-01", "protocol": "json", "targetPrefix": "Synthetic"},
  "operations": {"Op": {"name": "Op", "input": {"shape": "In"}}, "NoInput": {"name": "NoInput"}},
  "shapes": {
    "In": {"type": "structure", "required": ["Name"], "members": {
      "Name": {"shape": "Name"}, "Ratio": {"shape": "Ratio"}, "Big": {"shape": "Big"}, "Flag": {"shape": "Flag"},
      "When": {"shape": "When"}, "Blob": {"shape": "Blob"}, "Labels": {"shape": "Labels"}, "Items": {"shape": "Items"}}},
    "Name": {"type": "string", "min": 2, "max": 4, "enum": ["ab", "abc", "éé"]},
    "Ratio": {"type": "double", "min": 0.5, "max": 1.5},
    "Big": {"type": "long", "min": -1, "max": 5000000000},
    "Flag": {"type": "boolean"},
    "When": {"type": "timestamp"},
    "Blob": {"type": "blob"},
    "Labels": {"type": "map", "key": {"shape": "LabelKey"}, "value": {"shape": "Name"}, "max": 2},
    "LabelKey": {"type": "string", "pattern": "^[a-z]+$"},
    "Items": {"type": "list", "member": {"shape": "Item"}, "min": 1},
    "Item": {"type": "structure", "required": ["Name"], "members": {"Name": {"shape": "Name"}}}
  }
}`

func TestValidateEveryShapeType(t *testing.T) {
	m, err := LoadModel([]byte(syntheticModel))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadModel([]byte(syntheticModel), WithListMax("Name", 1)); err == nil {
		t.Fatal("WithListMax accepted a string shape")
	}
	if _, err := LoadModel([]byte(`{"shapes":{"S":{"type":"string","pattern":"(?=x)"}}}`)); err == nil {
		t.Fatal("an untranslatable pattern was accepted")
	}
	one := "1 validation error detected: "
	cases := []struct{ input, want string }{
		{`{"Name":"ab","Ratio":1,"Big":5000000000,"Flag":true,"When":1700000000,"Blob":"AA==","Labels":{"a":"abc"},"Items":[{"Name":"éé"}]}`, ""},
		{`{"Name":"éé","When":"2026-11-23T10:00:00Z"}`, ""},
		{`{"Name":"abcd"}`, one + "Value 'abcd' at 'name' failed to satisfy constraint: Member must satisfy enum value set: [ab, abc, éé]"},
		{`{"Name":"a"}`, "2 validation errors detected: Value 'a' at 'name' failed to satisfy constraint: Member must have length greater than or equal to 2; " +
			"Value 'a' at 'name' failed to satisfy constraint: Member must satisfy enum value set: [ab, abc, éé]"},
		{`{"Name":"ab","Ratio":0.25}`, one + "Value '0.25' at 'ratio' failed to satisfy constraint: Member must have value greater than or equal to 0.5"},
		{`{"Name":"ab","Big":5000000001}`, one + "Value '5000000001' at 'big' failed to satisfy constraint: Member must have value less than or equal to 5000000000"},
		{`{"Name":"ab","Labels":{"A":"ab","b":"zz","c":"ab"}}`, "3 validation errors detected: " +
			"Value '{a=ab, b=zz, c=ab}' at 'labels' failed to satisfy constraint: Member must have length less than or equal to 2; " +
			"Value 'A' at 'labels.A.key' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-z]+$; " +
			"Value 'zz' at 'labels.b.value' failed to satisfy constraint: Member must satisfy enum value set: [ab, abc, éé]"},
		{`{"Name":"ab","Items":[]}`, one + "Value '[]' at 'items' failed to satisfy constraint: Member must have length greater than or equal to 1"},
		{`{"Name":"ab","Items":[{}]}`, one + "Value null at 'items.1.member.name' failed to satisfy constraint: Member must not be null"},
		{`{"Name":null}`, one + "Value null at 'name' failed to satisfy constraint: Member must not be null"},
		{`{"Name":"ab","Flag":"yes"}`, "SerializationException: STRING_VALUE can not be converted to a Boolean"},
		{`{"Name":"ab","Ratio":"x"}`, "SerializationException: STRING_VALUE can not be converted to a Double"},
		{`{"Name":"ab","Big":1.5}`, "SerializationException: NUMBER_VALUE can not be converted to a Long"},
		{`{"Name":"ab","When":true}`, "SerializationException: BOOLEAN_VALUE can not be converted to a Date"},
		{`{"Name":"ab","Blob":1}`, "SerializationException: NUMBER_VALUE can not be converted to a ByteBuffer"},
		{`{"Name":"ab","Labels":[]}`, "SerializationException: Start of list found where not expected."},
		{`{"Name":"ab","Items":"x"}`, "SerializationException: STRING_VALUE can not be converted to a List"},
		{`{"Name":"ab","Labels":"x"}`, "SerializationException: STRING_VALUE can not be converted to a Map"},
		{`{"Name":"ab","Items":["x"]}`, "SerializationException: STRING_VALUE can not be converted to a Structure"},
		{`{"Name":"ab"} {}`, "SerializationException: "},
		{`{"Name":"ab","Unknown":[1,2,{"deep":true}]}`, ""},
	}
	for _, c := range cases {
		if got := validationMessage(t, m, "Op", c.input); got != c.want {
			t.Errorf("%s:\ngot  %q\nwant %q", c.input, got, c.want)
		}
	}
	if err := m.Validate("NoInput", []byte(`{"anything":1}`)); err != nil {
		t.Fatalf("operation without input: %v", err)
	}
}

func TestErrorTextAndUnwrap(t *testing.T) {
	cause := errors.New("disk on fire")
	e := NewInternalServerError(cause)
	if !errors.Is(e, cause) || !strings.Contains(e.Error(), "InternalServerError (InternalError)") || !strings.Contains(e.Error(), "disk on fire") {
		t.Fatalf("Error() = %q", e.Error())
	}
	if g := NewGatewayError("NoSuchCode", ""); g.Message != "The request is invalid." || g.Status != 400 {
		t.Fatalf("unknown code: %+v", g)
	}
	ae := &AuthError{Failure: AuthExpired, Message: "m"}
	if ae.Error() != "sigv4: m" {
		t.Fatalf("AuthError = %q", ae.Error())
	}
	for f, want := range map[AuthFailure][2]string{
		AuthMissing: {"MissingAuthenticationToken", "401"}, AuthUnknownKey: {"AuthFailure", "401"}, AuthIncomplete: {"IncompleteSignature", "400"},
		AuthExpired: {"RequestExpired", "400"}, AuthBadSignature: {"SignatureDoesNotMatch", "403"},
	} {
		q := queryAuthError(&AuthError{Failure: f, Message: "m"})
		if q.Type != want[0] || fmt.Sprint(q.Status) != want[1] {
			t.Errorf("EC2 auth error %d = %s %d, want %v", f, q.Type, q.Status, want)
		}
	}
}

// TestValidateRefusesTextJSONCannotCarry: invalid UTF-8 and unpaired
// surrogate escapes are a SerializationException, never silently turned
// into U+FFFD; well-formed non-ASCII text, escaped or not, passes.
func TestValidateRefusesTextJSONCannotCarry(t *testing.T) {
	m := storageGatewayModel(t)
	const op = "CreateSnapshotFromVolumeRecoveryPoint"
	body := func(desc string) []byte {
		return []byte(`{"VolumeARN":"` + volARN + `","SnapshotDescription":"` + desc + `"}`)
	}
	for _, c := range []struct {
		name string
		body []byte
		ok   bool
	}{
		{"plain", body("daily"), true},
		{"UTF-8", body("caf\u00e9 \U0001F600"), true},
		{"escaped pair", body(`\ud83d\ude00`), true},
		{"escaped BMP", body(`caf\u00e9 \uFFFD`), true},
		{"escaped backslash then u", body(`a\\ud800`), true},
		{"invalid start byte", body("bad\x97"), false},
		{"truncated sequence", body("bad\xe2\x82"), false},
		{"invalid byte outside strings", append(body("d"), ' ', 0xff), false},
		{"overlong encoding", body("\xc0\xaf"), false},
		{"UTF-8 encoded surrogate", body("\xed\xa0\x80"), false},
		{"lone high surrogate", body(`x\ud800y`), false},
		{"lone high surrogate at end", body(`\uD800`), false},
		{"lone low surrogate", body(`\udc00`), false},
		{"high then non-surrogate", body(`\ud800\u0041`), false},
		{"two highs", body(`\ud800\ud800`), false},
		{"surrogate escape in a key", []byte(`{"\ud800":1,"VolumeARN":"` + volARN + `","SnapshotDescription":"d"}`), false},
	} {
		err := m.Validate(op, c.body)
		if c.ok {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Type != TypeSerialization || e.Status != 400 {
			t.Errorf("%s: %v, want SerializationException", c.name, err)
		}
	}
}

// TestDecodeKeepsOnlyModelMembers: Decode hands the service the members
// the model defines, at every depth, with their values untouched.
func TestDecodeKeepsOnlyModelMembers(t *testing.T) {
	m := storageGatewayModel(t)
	in := `{"VolumeARN":"` + volARN + `","SnapshotDescription":"d","snapshotdescription":"` + strings.Repeat("x", 300) +
		`","Tags":[{"Key":"k","Value":"v","key":"other"}],"Extra":{"a":1}}`
	out, err := m.Decode("CreateSnapshotFromVolumeRecoveryPoint", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"SnapshotDescription":"d","Tags":[{"Key":"k","Value":"v"}],"VolumeARN":"` + volARN + `"}`
	if string(out) != want {
		t.Fatalf("Decode = %s\nwant %s", out, want)
	}
	out, err = m.Decode("ListGateways", []byte(`{"Limit":12345678901,"Marker":"m"}`))
	if err == nil {
		t.Fatalf("Decode accepted an out-of-range Integer: %s", out)
	}
	out, err = m.Decode("ListGateways", []byte(` `))
	if err != nil || string(out) != `{}` {
		t.Fatalf("empty body: %s %v", out, err)
	}
}
