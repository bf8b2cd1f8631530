package s3

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// tcpPair is a connected loopback TCP pair: the client end as a bodyConn,
// and everything the server end receives until the client closes.
func tcpPair(t *testing.T) (*bodyConn, <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &bodyConn{TCPConn: c.(*net.TCPConn)}, got
}

// TestBodyConnReadFrom: what io.Copy(conn, io.LimitReader(body, n)) sends
// through a bodyConn is what it would send through the bare connection:
// exactly the first n bytes of the body, the rest left in the body; for a
// body that can write itself and for one that cannot.
func TestBodyConnReadFrom(t *testing.T) {
	data := make([]byte, 3<<20) // past any socket buffer: the write blocks and resumes
	rand.Read(data)
	for _, c := range []struct {
		name  string
		limit int64
		body  func() io.Reader
	}{
		{"WriterTo, exact length", int64(len(data)), func() io.Reader { return bytes.NewReader(data) }},
		{"WriterTo, longer than the limit", int64(len(data)) - 12345, func() io.Reader { return bytes.NewReader(data) }},
		{"WriterTo, limit 0", 0, func() io.Reader { return bytes.NewReader(data) }},
		{"plain Reader, longer than the limit", int64(len(data)) - 12345, func() io.Reader { return struct{ io.Reader }{bytes.NewReader(data)} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, got := tcpPair(t)
			body := c.body()
			lr := &io.LimitedReader{R: body, N: c.limit}
			n, err := io.Copy(conn, lr)
			if err != nil || n != c.limit {
				t.Fatalf("copied %d bytes, %v; want %d, nil", n, err, c.limit)
			}
			if lr.N != 0 {
				t.Errorf("LimitedReader.N = %d after the copy, want 0", lr.N)
			}
			rest, _ := io.ReadAll(body)
			if !bytes.Equal(rest, data[c.limit:]) {
				t.Errorf("%d bytes left in the body, want the %d past the limit", len(rest), len(data)-int(c.limit))
			}
			conn.Close()
			if b := <-got; !bytes.Equal(b, data[:c.limit]) {
				t.Errorf("peer received %d bytes, want the first %d of the body", len(b), c.limit)
			}
		})
	}
}

// TestTunedTransportBodies: through a transport tuneTransport adjusted,
// a request body of its Content-Length arrives whole, and one longer than
// its Content-Length fails the request, as net/http's own copy does.
func TestTunedTransportBodies(t *testing.T) {
	var received []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tuneTransport(tr)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	data := make([]byte, 1<<20+7)
	rand.Read(data)

	req, err := http.NewRequest(http.MethodPut, srv.URL+"/k", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !bytes.Equal(received, data) {
		t.Fatalf("server received %d bytes, want the %d sent", len(received), len(data))
	}

	req, err = http.NewRequest(http.MethodPut, srv.URL+"/k", io.NopCloser(bytes.NewReader(data)))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(data)) - 100
	resp, err = client.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a body longer than its Content-Length was sent without error")
	}
	if !strings.Contains(err.Error(), "ContentLength") {
		t.Errorf("err = %v, want net/http's ContentLength mismatch", err)
	}
}
