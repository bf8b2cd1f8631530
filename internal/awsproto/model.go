package awsproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Model is a botocore service model (the JSON in /work/shared/aws-models),
// loaded for validating requests. It is immutable after LoadModel and safe
// for concurrent use.
type Model struct {
	Metadata   ModelMetadata
	operations map[string]modelOperation
	shapes     map[string]*shape
	// patterns holds a matcher per distinct pattern string in the model.
	patterns map[string]func(string) bool
}

// ModelMetadata is the part of the model's metadata volgw uses.
type ModelMetadata struct {
	APIVersion   string `json:"apiVersion"`
	Protocol     string `json:"protocol"`
	TargetPrefix string `json:"targetPrefix"`
	XMLNamespace string `json:"xmlNamespace"`
	EndpointID   string `json:"endpointPrefix"`
}

type modelOperation struct {
	Name  string    `json:"name"`
	Input *shapeRef `json:"input"`
}

type shapeRef struct {
	Shape string `json:"shape"`
}

type shape struct {
	Type     string   `json:"type"`
	Required []string `json:"required"`
	Members  members  `json:"members"`
	Member   *shapeRef
	Key      *shapeRef
	Value    *shapeRef
	Min      *float64
	Max      *float64
	Pattern  string
	Enum     []string
}

// members keeps a structure's members in model order: AWS lists
// validation errors in that order.
type members []member

type member struct {
	Name  string
	Shape string
}

func (m *members) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // {
		return err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		var ref shapeRef
		if err := dec.Decode(&ref); err != nil {
			return err
		}
		*m = append(*m, member{Name: tok.(string), Shape: ref.Shape})
	}
	return nil
}

func (m members) has(name string) bool {
	for _, mem := range m {
		if mem.Name == name {
			return true
		}
	}
	return false
}

// ModelOption adjusts a model at load time.
type ModelOption func(*Model) error

// WithListMax adds a maximum length to a list shape, for limits that the
// service enforces but its model does not state (Storage Gateway's Tags
// list: "up to 50 tags"). AWS reports them like any other length
// constraint.
func WithListMax(shapeName string, max int) ModelOption {
	return func(m *Model) error {
		s, ok := m.shapes[shapeName]
		if !ok || s.Type != "list" {
			return fmt.Errorf("awsproto: WithListMax: no list shape %q", shapeName)
		}
		v := float64(max)
		s.Max = &v
		return nil
	}
}

// LoadModel parses a botocore service model. Every pattern in it must
// compile (or be one of the translated ones), so that no request is ever
// accepted for want of a validator.
func LoadModel(data []byte, opts ...ModelOption) (*Model, error) {
	var f struct {
		Metadata   ModelMetadata             `json:"metadata"`
		Operations map[string]modelOperation `json:"operations"`
		Shapes     map[string]*shape         `json:"shapes"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("awsproto: parse model: %w", err)
	}
	m := &Model{Metadata: f.Metadata, operations: f.Operations, shapes: f.Shapes, patterns: map[string]func(string) bool{}}
	for name, s := range m.shapes {
		if s.Pattern == "" {
			continue
		}
		if _, done := m.patterns[s.Pattern]; done {
			continue
		}
		match, err := compilePattern(s.Pattern)
		if err != nil {
			return nil, fmt.Errorf("awsproto: shape %s: %w", name, err)
		}
		m.patterns[s.Pattern] = match
	}
	for _, o := range opts {
		if err := o(m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// HasOperation reports whether the model defines the operation.
func (m *Model) HasOperation(name string) bool {
	_, ok := m.operations[name]
	return ok
}

// OperationNames lists the model's operations, sorted.
func (m *Model) OperationNames() []string {
	names := make([]string, 0, len(m.operations))
	for n := range m.operations {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ErrUnknownOperation is returned by Validate for an operation the model
// does not define.
var ErrUnknownOperation = errors.New("awsproto: unknown operation")

// Validate checks an operation's JSON input against the model. It returns
// nil, a SerializationException (*Error) when the body is not a JSON object
// or a member has the wrong JSON type, or a ValidationException (*Error)
// listing every violated constraint in AWS's words:
//
//	1 validation error detected: Value 'x' at 'snapshotDescription' failed
//	to satisfy constraint: Member must have length less than or equal to 255
//
// Paths use lower-camel member names and `.N.member` for list elements
// (1-based), as AWS's Coral framework prints them. Unknown members are
// ignored, as AWS ignores them.
func (m *Model) Validate(op string, input []byte) error {
	_, err := m.Decode(op, input)
	return err
}

// Decode is Validate that also returns the input to hand the service: the
// validated JSON with every member the model does not define removed, at
// every depth. Member names are case-sensitive, as AWS's are, but
// encoding/json matches struct fields case-insensitively: without this, a
// body with both "SnapshotDescription" (checked) and "snapshotdescription"
// (ignored by the check) would reach the handler with the unchecked value.
func (m *Model) Decode(op string, input []byte) ([]byte, error) {
	o, ok := m.operations[op]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownOperation, op)
	}
	if len(bytes.TrimSpace(input)) == 0 {
		input = []byte("{}")
	}
	// encoding/json would turn invalid UTF-8, and \u escapes of unpaired
	// UTF-16 surrogates, into U+FFFD without a word, so that a
	// description or tag would be stored other than sent. JSON text must
	// be UTF-8 (RFC 8259 §8.1) and AWS's parser refuses a body that is
	// not; an unpaired surrogate (valid JSON, a Java string holds it) has
	// no UTF-8 form to keep, so it is refused too rather than altered.
	if !utf8.Valid(input) || hasUnpairedSurrogate(input) {
		return nil, NewSerializationError("")
	}
	dec := json.NewDecoder(bytes.NewReader(input))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, NewSerializationError("")
	}
	if dec.More() {
		return nil, NewSerializationError("")
	}
	if _, isObject := v.(map[string]any); !isObject {
		return nil, NewSerializationError(jsonTokenName(v) + " can not be converted to a Structure")
	}
	if o.Input == nil {
		return []byte("{}"), nil
	}
	w := walker{m: m}
	if err := w.value(o.Input.Shape, "", v); err != nil {
		return nil, err
	}
	if len(w.violations) > 0 {
		noun := "errors"
		if len(w.violations) == 1 {
			noun = "error"
		}
		return nil, NewValidationError(fmt.Sprintf("%d validation %s detected: %s", len(w.violations), noun,
			strings.Join(w.violations, "; ")))
	}
	// Numbers stay json.Number (their text), strings are valid UTF-8:
	// nothing but the dropped members changes.
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("awsproto: re-encode %s input: %w", op, err)
	}
	return out, nil
}

// hasUnpairedSurrogate reports whether a JSON text has a \uD800–\uDFFF
// escape that is not a high surrogate followed by a low one.
func hasUnpairedSurrogate(b []byte) bool {
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !inString {
			inString = c == '"'
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 >= len(b) || b[i+1] != 'u' {
				i++ // a one-character escape
				continue
			}
			r, ok := hex4(b, i+2)
			if !ok {
				continue // malformed: the decoder refuses it
			}
			i += 5
			if !utf16.IsSurrogate(rune(r)) {
				continue
			}
			if r >= 0xDC00 { // a low surrogate first
				return true
			}
			if i+6 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' {
				return true
			}
			lo, ok := hex4(b, i+3)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 6
		}
	}
	return false
}

// hex4 reads four hex digits at b[at:].
func hex4(b []byte, at int) (uint16, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[at:at+4]), 16, 16)
	return uint16(n), err == nil
}

type walker struct {
	m          *Model
	violations []string
}

func (w *walker) violate(path string, v any, constraint string) {
	w.violations = append(w.violations, "Value "+renderValue(v)+" at '"+path+"' failed to satisfy constraint: "+constraint)
}

// value validates v (decoded with UseNumber; never nil here) against the
// named shape. A type mismatch is a SerializationException and stops the
// walk, as Coral fails deserialisation before validating.
func (w *walker) value(shapeName, path string, v any) error {
	s, ok := w.m.shapes[shapeName]
	if !ok {
		return fmt.Errorf("awsproto: model has no shape %q", shapeName)
	}
	switch s.Type {
	case "structure":
		obj, ok := v.(map[string]any)
		if !ok {
			return typeMismatch(v, "Structure")
		}
		required := map[string]bool{}
		for _, r := range s.Required {
			required[r] = true
		}
		// Members the model does not define are ignored, as AWS ignores
		// them, and dropped so that the service never sees them (Decode).
		for name := range obj {
			if !s.Members.has(name) {
				delete(obj, name)
			}
		}
		for _, mem := range s.Members {
			p := joinPath(path, lowerCamel(mem.Name))
			mv, present := obj[mem.Name]
			if !present || mv == nil {
				if required[mem.Name] {
					w.violate(p, nil, "Member must not be null")
				}
				continue
			}
			if err := w.value(mem.Shape, p, mv); err != nil {
				return err
			}
		}
	case "list":
		list, ok := v.([]any)
		if !ok {
			return typeMismatch(v, "List")
		}
		w.length(s, path, v, len(list))
		for i, e := range list {
			if e == nil {
				continue
			}
			if err := w.value(s.Member.Shape, path+"."+strconv.Itoa(i+1)+".member", e); err != nil {
				return err
			}
		}
	case "map":
		obj, ok := v.(map[string]any)
		if !ok {
			return typeMismatch(v, "Map")
		}
		w.length(s, path, v, len(obj))
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := w.value(s.Key.Shape, path+"."+k+".key", k); err != nil {
				return err
			}
			if obj[k] == nil {
				continue
			}
			if err := w.value(s.Value.Shape, path+"."+k+".value", obj[k]); err != nil {
				return err
			}
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return typeMismatch(v, "String")
		}
		w.length(s, path, v, len(utf16.Encode([]rune(str))))
		if s.Pattern != "" && !w.m.patterns[s.Pattern](str) {
			w.violate(path, v, "Member must satisfy regular expression pattern: "+s.Pattern)
		}
		if len(s.Enum) > 0 && !contains(s.Enum, str) {
			w.violate(path, v, "Member must satisfy enum value set: ["+strings.Join(s.Enum, ", ")+"]")
		}
	case "integer", "long":
		n, ok := v.(json.Number)
		if !ok {
			return typeMismatch(v, javaNumberName(s.Type))
		}
		i, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil || (s.Type == "integer" && (i < math.MinInt32 || i > math.MaxInt32)) {
			return NewSerializationError("NUMBER_VALUE can not be converted to " + article(javaNumberName(s.Type)))
		}
		w.numberRange(s, path, v, float64(i))
	case "double", "float":
		n, ok := v.(json.Number)
		if !ok {
			return typeMismatch(v, "Double")
		}
		f, err := n.Float64()
		if err != nil {
			return NewSerializationError("NUMBER_VALUE can not be converted to a Double")
		}
		w.numberRange(s, path, v, f)
	case "boolean":
		if _, ok := v.(bool); !ok {
			return typeMismatch(v, "Boolean")
		}
	case "timestamp":
		// JSON 1.1 sends epoch seconds; Coral also accepts an ISO string.
		switch v.(type) {
		case json.Number, string:
		default:
			return typeMismatch(v, "Date")
		}
	case "blob":
		if _, ok := v.(string); !ok {
			return typeMismatch(v, "ByteBuffer")
		}
	}
	return nil
}

func (w *walker) length(s *shape, path string, v any, n int) {
	if s.Min != nil && float64(n) < *s.Min {
		w.violate(path, v, "Member must have length greater than or equal to "+formatBound(*s.Min))
	}
	if s.Max != nil && float64(n) > *s.Max {
		w.violate(path, v, "Member must have length less than or equal to "+formatBound(*s.Max))
	}
}

func (w *walker) numberRange(s *shape, path string, v any, f float64) {
	if s.Min != nil && f < *s.Min {
		w.violate(path, v, "Member must have value greater than or equal to "+formatBound(*s.Min))
	}
	if s.Max != nil && f > *s.Max {
		w.violate(path, v, "Member must have value less than or equal to "+formatBound(*s.Max))
	}
}

func formatBound(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// lowerCamel lowers the first letter only, as Coral does ("VolumeARN" →
// "volumeARN").
func lowerCamel(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// renderValue prints a value as Coral's messages do: strings and numbers
// quoted raw, null bare, lists as Java's List.toString.
func renderValue(v any) string {
	if v == nil {
		return "null"
	}
	return "'" + javaString(v) + "'"
}

func javaString(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return x
	case json.Number:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = javaString(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = lowerCamel(k) + "=" + javaString(x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}

// typeMismatch is the SerializationException for a member of the wrong
// JSON type, in the words of the Jackson-based parser AWS runs.
func typeMismatch(v any, want string) error {
	switch v.(type) {
	case map[string]any:
		return NewSerializationError("Start of structure or map found where not expected.")
	case []any:
		return NewSerializationError("Start of list found where not expected.")
	}
	return NewSerializationError(jsonTokenName(v) + " can not be converted to " + article(want))
}

func jsonTokenName(v any) string {
	switch v.(type) {
	case string:
		return "STRING_VALUE"
	case json.Number:
		return "NUMBER_VALUE"
	case bool:
		return "BOOLEAN_VALUE"
	case []any:
		return "START_ARRAY"
	case map[string]any:
		return "START_OBJECT"
	}
	return "NULL_VALUE"
}

func javaNumberName(t string) string {
	if t == "long" {
		return "Long"
	}
	return "Integer"
}

func article(noun string) string {
	if strings.ContainsRune("AEIOU", rune(noun[0])) {
		return "an " + noun
	}
	return "a " + noun
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// compilePattern turns a model pattern into a full-string matcher: AWS
// (Java's String.matches) requires the whole value to match, so every
// pattern is anchored. Go's RE2 has no lookaround; the few model patterns
// that use it are translated to equivalent checks, listed in
// lookaroundPatterns.
func compilePattern(p string) (func(string) bool, error) {
	if re, err := regexp.Compile(`\A(?:` + p + `)\z`); err == nil {
		return re.MatchString, nil
	}
	if match, ok := lookaroundPatterns[p]; ok {
		return match, nil
	}
	return nil, fmt.Errorf("pattern %q does not compile in Go and has no translation", p)
}

var (
	// hostnamePort is the first alternative of the model's Host pattern.
	hostnamePort = regexp.MustCompile(`\A(([a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*([A-Za-z0-9\-]*[A-Za-z0-9])(:(\d+))?\z`)
	// ipv4CIDR is the first alternative of Ipv4OrIpv6AddressCIDR.
	ipv4CIDR = regexp.MustCompile(`\A(?:(?:[0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])\.){3}(?:[0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])(?:\/(?:[0-9]|[1-2][0-9]|3[0-2]))?\z`)
	// ipv4Dotted is IPV4Address's pattern without its (?!$) lookahead:
	// four octets without leading zeros, separated by dots.
	ipv4Dotted = regexp.MustCompile(`\A(?:(?:25[0-5]|(?:2[0-4]|1[0-9]|[1-9]|)[0-9])\.){3}(?:25[0-5]|(?:2[0-4]|1[0-9]|[1-9]|)[0-9])\z`)
	digits     = regexp.MustCompile(`\A\d+\z`)
)

// lookaroundPatterns maps each model pattern that RE2 cannot compile to an
// equivalent matcher. The IPv6 alternatives of those patterns (lookaheads
// that bound the number of groups) accept exactly the textual IPv6
// addresses without zone, which netip parses.
var lookaroundPatterns = map[string]func(string) bool{
	`^((25[0-5]|(2[0-4]|1[0-9]|[1-9]|)[0-9])(\.(?!$)|$)){4}`: ipv4Dotted.MatchString,
	`^(([a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*([A-Za-z0-9\-]*[A-Za-z0-9])(:(\d+))?$|^(?:\[(?:(?:(?:[A-Fa-f0-9]{1,4}:){6}|(?=(?:[A-Fa-f0-9]{0,4}:){0,6}(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![:.\w]))(?:(?:[0-9A-Fa-f]{1,4}:){0,5}|:)(?:(?::[0-9A-Fa-f]{1,4}){1,5}:|:)|::(?:[A-Fa-f0-9]{1,4}:){5})(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)|(?:[A-Fa-f0-9]{1,4}:){7}[A-Fa-f0-9]{1,4}|(?=(?:[A-Fa-f0-9]{0,4}:){0,7}[A-Fa-f0-9]{0,4}(?![:.\w]))(?:(?:[0-9A-Fa-f]{1,4}:){1,7}|:)(?:(:[0-9A-Fa-f]{1,4}){1,7}|:)|(?:[A-Fa-f0-9]{1,4}:){7}:|:(:[A-Fa-f0-9]{1,4}){7})\]:\d+$|^(?:(?:(?:[A-Fa-f0-9]{1,4}:){6}|(?=(?:[A-Fa-f0-9]{0,4}:){0,6}(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![:.\w]))(?:(?:[0-9A-Fa-f]{1,4}:){0,5}|:)(?:(?::[0-9A-Fa-f]{1,4}){1,5}:|:)|::(?:[A-Fa-f0-9]{1,4}:){5})(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)|(?:[A-Fa-f0-9]{1,4}:){7}[A-Fa-f0-9]{1,4}|(?=(?:[A-Fa-f0-9]{0,4}:){0,7}[A-Fa-f0-9]{0,4}(?![:.\w]))(?:(?:[0-9A-Fa-f]{1,4}:){1,7}|:)(?:(:[0-9A-Fa-f]{1,4}){1,7}|:)|(?:[A-Fa-f0-9]{1,4}:){7}:|:(:[A-Fa-f0-9]{1,4}){7})$)`: func(s string) bool {
		if hostnamePort.MatchString(s) || isIPv6(s) {
			return true
		}
		if rest, ok := strings.CutPrefix(s, "["); ok {
			addr, port, found := strings.Cut(rest, "]:")
			return found && isIPv6(addr) && digits.MatchString(port)
		}
		return false
	},
	`^(?:(?:[0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])\.){3}(?:[0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])(?:\/(?:[0-9]|[1-2][0-9]|3[0-2]))?$|^(?:(?:(?:[A-Fa-f0-9]{1,4}:){6}|(?=(?:[A-Fa-f0-9]{0,4}:){0,6}(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![:.\w]))(?:(?:[0-9A-Fa-f]{1,4}:){0,5}|:)(?:(?::[0-9A-Fa-f]{1,4}){1,5}:|:)|::(?:[A-Fa-f0-9]{1,4}:){5})(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)|(?:[A-Fa-f0-9]{1,4}:){7}[A-Fa-f0-9]{1,4}|(?=(?:[A-Fa-f0-9]{0,4}:){0,7}[A-Fa-f0-9]{0,4}(?![:.\w]))(?:(?:[0-9A-Fa-f]{1,4}:){1,7}|:)(?:(:[0-9A-Fa-f]{1,4}){1,7}|:)|(?:[A-Fa-f0-9]{1,4}:){7}:|:(:[A-Fa-f0-9]{1,4}){7})(?:\/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))?$`: func(s string) bool {
		if ipv4CIDR.MatchString(s) {
			return true
		}
		addr, bits, hasBits := strings.Cut(s, "/")
		if !isIPv6(addr) {
			return false
		}
		if !hasBits {
			return true
		}
		n, err := strconv.Atoi(bits)
		return err == nil && digits.MatchString(bits) && n <= 128 && (len(bits) == 1 || bits[0] != '0')
	},
}

// isIPv6 accepts a textual IPv6 address (possibly with an embedded IPv4
// tail), without zone or brackets.
func isIPv6(s string) bool {
	if !strings.Contains(s, ":") || strings.Contains(s, "%") {
		return false
	}
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6()
}
