package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestPprofEndpoint: --pprof-listen serves net/http/pprof on its own
// listener (a heap profile a user can attach to a bug report), and the API
// listener serves none of it.
func TestPprofEndpoint(t *testing.T) {
	s := startServerWith(t, "", []string{"--pprof-listen", "127.0.0.1:0"}, nil)
	if s.PprofAddr() == "" || s.PprofAddr() == s.APIAddr() {
		t.Fatalf("pprof on %q, API on %q", s.PprofAddr(), s.APIAddr())
	}
	get := func(url string) (int, []byte) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	code, heap := get("http://" + s.PprofAddr() + "/debug/pprof/heap")
	// A heap profile is gzipped protobuf.
	if code != http.StatusOK || !bytes.HasPrefix(heap, []byte{0x1f, 0x8b}) {
		t.Fatalf("GET /debug/pprof/heap: %d, %d bytes starting %q", code, len(heap), heap[:min(len(heap), 16)])
	}
	if code, index := get("http://" + s.PprofAddr() + "/debug/pprof/"); code != http.StatusOK || !strings.Contains(string(index), "goroutine") {
		t.Fatalf("GET /debug/pprof/: %d %q", code, index)
	}
	if code, b := get(s.endpoint() + "/debug/pprof/heap"); code == http.StatusOK || bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Fatalf("the API listener answered /debug/pprof/heap: %d", code)
	}
	// Off by default.
	if d := startServer(t, ""); d.PprofAddr() != "" {
		t.Fatalf("pprof on %q without --pprof-listen", d.PprofAddr())
	}
}
