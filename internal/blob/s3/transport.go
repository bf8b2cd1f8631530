package s3

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
)

// idleConnsPerHost is how many idle connections to the store are kept for
// reuse: enough for every PUT of a cut (the volume engine's
// UploadConcurrency, 8 by default) and the reads beside them. The SDK's
// default, 10, closes the connections past it after each burst; each one
// reopened costs both sides a TCP handshake.
const idleConnsPerHost = 64

// tuneTransport adjusts the SDK's HTTP transport for uploads: idle
// connections kept for every PUT in flight, and request bodies written to
// plain-HTTP connections in one write (bodyConn).
func tuneTransport(tr *http.Transport) {
	tr.MaxIdleConnsPerHost = idleConnsPerHost
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if tc, ok := c.(*net.TCPConn); ok {
			return &bodyConn{TCPConn: tc}, nil
		}
		return c, nil
	}
}

// bodyConn is a TCP connection to the store that sends a request body in
// one write where it can. net/http hands a body of known length to the
// connection as an io.LimitedReader, which hides the body's WriteTo, so
// net's generic copy moves it through a 32 KiB buffer: a copy of every byte
// in user space and a write syscall per 32 KiB (16 per 512 KiB block).
// Here a body that can write itself (the SDK's wrapper of a bytes.Reader)
// writes straight to the socket, at most the LimitedReader's N bytes, as
// the copy would. Over TLS the transport wraps the connection and encrypts
// in records; this path is then not taken.
type bodyConn struct {
	*net.TCPConn
}

// ReadFrom is what io.Copy(conn, body) calls.
func (c *bodyConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if wt, ok := lr.R.(io.WriterTo); ok {
			n, err := wt.WriteTo(&limitedWriter{w: c.TCPConn, n: lr.N})
			lr.N -= n
			if errors.Is(err, errPastLimit) {
				// The body is longer than the request's Content-Length:
				// what is left stays in the reader, where net/http looks
				// for it and fails the request, as after the copy.
				err = nil
			}
			return n, err
		}
	}
	return c.TCPConn.ReadFrom(r)
}

// errPastLimit: a limitedWriter was asked to write past its limit.
var errPastLimit = errors.New("s3: body longer than its Content-Length")

// limitedWriter writes at most n bytes to w. A write that would pass the
// limit writes the part up to it and reports the short count, so that an
// io.WriterTo that honours short writes (bytes.Reader does) keeps the rest.
type limitedWriter struct {
	w io.Writer
	n int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	short := false
	if int64(len(p)) > l.n {
		p, short = p[:l.n], true
	}
	n, err := l.w.Write(p)
	l.n -= int64(n)
	if err == nil && short {
		err = errPastLimit
	}
	return n, err
}
