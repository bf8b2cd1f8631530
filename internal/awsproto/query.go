package awsproto

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// EC2Namespace is the XML namespace of EC2 API version 2016-11-15 answers.
const EC2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// QueryParams are the parameters of an EC2 query request: the form body
// and the URL query, merged (body values after query values).
type QueryParams url.Values

// Get returns the first value of name, or "".
func (p QueryParams) Get(name string) string { return url.Values(p).Get(name) }

// Has reports whether name was sent (even empty).
func (p QueryParams) Has(name string) bool { return url.Values(p).Has(name) }

// List returns the values of an EC2 list parameter, `prefix.1`,
// `prefix.2`, …, in index order. Indexes need not be contiguous (EC2
// accepts gaps); a non-numeric suffix is ignored.
func (p QueryParams) List(prefix string) []string {
	type item struct {
		n int
		v string
	}
	var items []item
	for k, vs := range p {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok || len(vs) == 0 {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 {
			continue
		}
		items = append(items, item{n, vs[0]})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].n < items[j].n })
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out
}

// Filter is one EC2 filter: Filter.N.Name with its Filter.N.Value.M values.
type Filter struct {
	Name   string
	Values []string
}

// Filters returns the request's Filter.N.Name / Filter.N.Value.M in index
// order.
func (p QueryParams) Filters() []Filter {
	seen := map[int]bool{}
	var idx []int
	for k := range p {
		rest, ok := strings.CutPrefix(k, "Filter.")
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, ".")
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || seen[n] {
			continue
		}
		seen[n] = true
		idx = append(idx, n)
	}
	sort.Ints(idx)
	out := make([]Filter, 0, len(idx))
	for _, n := range idx {
		base := "Filter." + strconv.Itoa(n)
		out = append(out, Filter{Name: p.Get(base + ".Name"), Values: p.List(base + ".Value")})
	}
	return out
}

// EncodeQueryResponse encodes an EC2 answer: body's fields (with their xml
// tags) inside <{action}Response xmlns="…"><requestId>…</requestId>…,
// the shape the Go SDK and botocore parse.
func EncodeQueryResponse(action, requestID string, body any) ([]byte, error) {
	var inner bytes.Buffer
	if body != nil {
		enc := xml.NewEncoder(&inner)
		if err := enc.EncodeElement(body, xml.StartElement{Name: xml.Name{Local: "x"}}); err != nil {
			return nil, fmt.Errorf("awsproto: encode %s response: %w", action, err)
		}
		if err := enc.Flush(); err != nil {
			return nil, err
		}
	}
	// EncodeElement wrapped the fields in <x>…</x> (or <x/> when empty);
	// keep only the fields.
	fields := inner.Bytes()
	fields = bytes.TrimPrefix(fields, []byte("<x>"))
	fields = bytes.TrimSuffix(fields, []byte("</x>"))
	if bytes.Equal(fields, []byte("<x/>")) {
		fields = nil
	}
	var out bytes.Buffer
	out.WriteString(xml.Header)
	out.WriteString("<" + action + "Response xmlns=\"" + EC2Namespace + "\"><requestId>")
	_ = xml.EscapeText(&out, []byte(requestID))
	out.WriteString("</requestId>")
	out.Write(fields)
	out.WriteString("</" + action + "Response>")
	return out.Bytes(), nil
}
