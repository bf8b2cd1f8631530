package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/blob/s3"
)

// TestContract runs the blob.Store contract on a real versitygw. S3 ETags
// are content MD5s, so an identical rewrite keeps its ETag; everything else
// is held to the strict contract, conditional writes included. The small
// list page makes every List of more than 7 keys span several pages.
func TestContract(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	blobtest.RunContractTestsWith(t, func(t testing.TB) blob.Store {
		return srv.StoreWith(t, func(c *s3.Config) { c.ListPageSize = 7 })
	}, blobtest.ContractOptions{SameContentSameETag: true})
}

// TestPrefixIsolation: two stores on one bucket with different prefixes
// see only their own keys, and the prefix never shows in a key.
func TestPrefixIsolation(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	ctx := context.Background()
	a, err := s3.New(ctx, srv.Config("site-a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s3.New(ctx, srv.Config("site-b/"))
	if err != nil {
		t.Fatal(err)
	}
	whole, err := s3.New(ctx, srv.Config(""))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, "k", []byte("a"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, "k", []byte("b"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s    blob.Store
		want string
	}{{a, "a"}, {b, "b"}} {
		got, err := c.s.Get(ctx, "k")
		if err != nil || string(got) != c.want {
			t.Errorf("Get(k) = %q, %v; want %q", got, err, c.want)
		}
		var keys []string
		c.s.List(ctx, "", func(i blob.ObjectInfo) error { keys = append(keys, i.Key); return nil })
		if len(keys) != 1 || keys[0] != "k" {
			t.Errorf("List = %q, want [k]", keys)
		}
	}
	var keys []string
	if err := whole.List(ctx, "", func(i blob.ObjectInfo) error { keys = append(keys, i.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0] != "site-a/k" || keys[1] != "site-b/k" {
		t.Errorf("unprefixed List = %q, want [site-a/k site-b/k]", keys)
	}
}

// TestMissingBucketIsNotNotFound: a wrong bucket is a configuration error,
// never mistaken for an absent object (which would read as zeros).
func TestMissingBucketIsNotNotFound(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	cfg := srv.Config("")
	cfg.Bucket = "no-such-bucket"
	s, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(context.Background(), "k")
	if err == nil || errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Get on a missing bucket: err = %v, want an error that is not ErrNotFound", err)
	}
}

func TestWrongCredentialsFail(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	cfg := srv.Config("")
	cfg.SecretAccessKey = "wrong"
	s, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(context.Background(), "k", []byte("x"), blob.PutOptions{}); err == nil {
		t.Error("Put with a wrong secret succeeded")
	}
}

// TestPresetSHA256: with SignPayload, a Put given the data's SHA-256 signs
// with it instead of
// hashing again. The server checks the signed hash against the body, so
// the right one stores the object and a wrong one is refused (which shows
// the given hash, not a recomputed one, reached the signature).
func TestPresetSHA256(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	s := srv.StoreWith(t, func(c *s3.Config) { c.SignPayload = true })
	ctx := context.Background()
	data := []byte("content-addressed")
	sum := sha256.Sum256(data)
	if _, err := s.Put(ctx, "blocks/ok", data, blob.PutOptions{IfNoneMatch: true, SHA256: &sum}); err != nil {
		t.Fatalf("Put with its SHA-256: %v", err)
	}
	if got, err := s.Get(ctx, "blocks/ok"); err != nil || string(got) != string(data) {
		t.Fatalf("Get = %q, %v", got, err)
	}
	wrong := sha256.Sum256([]byte("something else"))
	if _, err := s.Put(ctx, "blocks/bad", data, blob.PutOptions{SHA256: &wrong}); err == nil {
		t.Fatal("Put with a wrong SHA-256 succeeded")
	}
	if _, err := s.Stat(ctx, "blocks/bad"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Put with a wrong SHA-256 stored the object (Stat err = %v)", err)
	}
}

// TestServerSideEncryptionHeaders: with SSE configured every PUT asks the
// store for it, in the headers AWS S3 reads (SSE-S3 and SSE-KMS).
func TestServerSideEncryptionHeaders(t *testing.T) {
	for _, c := range []struct{ sse, kmsKey string }{{"AES256", ""}, {"aws:kms", "arn:aws:kms:us-east-1:123456789012:key/k1"}, {"aws:kms", ""}} {
		var got http.Header
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut {
				got = r.Header.Clone()
			}
			w.Header().Set("ETag", `"d41d8cd98f00b204e9800998ecf8427e"`)
		}))
		st, err := s3.New(context.Background(), s3.Config{Endpoint: srv.URL, Bucket: "b", Region: "us-east-1", PathStyle: true,
			AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: "secret", ServerSideEncryption: c.sse, SSEKMSKeyID: c.kmsKey, MaxAttempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Put(context.Background(), "k", []byte("x"), blob.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		if got.Get("X-Amz-Server-Side-Encryption") != c.sse || got.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id") != c.kmsKey {
			t.Fatalf("%+v: PUT sent sse %q key %q", c, got.Get("X-Amz-Server-Side-Encryption"), got.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"))
		}
	}
}

// TestPutIntegrityHeaders: by default a PUT carries its body's CRC-32C and
// an unsigned payload, and no other checksum (no SDK trailer, no chunked
// encoding, no MD5); with SignPayload it carries the body's SHA-256 in the
// signature (the given one, or one the SDK computes) and no checksum
// header.
func TestPutIntegrityHeaders(t *testing.T) {
	data := []byte("a block's bytes, or a page's")
	sum := sha256.Sum256(data)
	other := sha256.Sum256([]byte("not the data: shows which hash was signed"))
	for _, c := range []struct {
		name       string
		sign       bool
		given      *[32]byte
		wantSHA256 string
		wantCRC32C string
	}{
		{name: "default", wantSHA256: "UNSIGNED-PAYLOAD", wantCRC32C: "crc32c"},
		{name: "default, SHA-256 given", given: &sum, wantSHA256: "UNSIGNED-PAYLOAD", wantCRC32C: "crc32c"},
		{name: "signed", sign: true, wantSHA256: hex.EncodeToString(sum[:])},
		{name: "signed, SHA-256 given", sign: true, given: &other, wantSHA256: hex.EncodeToString(other[:])},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got http.Header
			var body []byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPut {
					got = r.Header.Clone()
					body, _ = io.ReadAll(r.Body)
				}
				w.Header().Set("ETag", `"d41d8cd98f00b204e9800998ecf8427e"`)
			}))
			defer srv.Close()
			st, err := s3.New(context.Background(), s3.Config{Endpoint: srv.URL, Bucket: "b", Region: "us-east-1", PathStyle: true,
				AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: "secret", MaxAttempts: 1, SignPayload: c.sign})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Put(context.Background(), "k", data, blob.PutOptions{IfNoneMatch: true, SHA256: c.given}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(body, data) {
				t.Fatalf("body %q, want %q", body, data)
			}
			if h := got.Get("X-Amz-Content-Sha256"); h != c.wantSHA256 {
				t.Errorf("x-amz-content-sha256 %q, want %q", h, c.wantSHA256)
			}
			if !strings.Contains(got.Get("Authorization"), "x-amz-content-sha256") {
				t.Errorf("x-amz-content-sha256 is not among the signed headers: %q", got.Get("Authorization"))
			}
			var crc [4]byte
			binary.BigEndian.PutUint32(crc[:], crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
			wantHeaders := map[string]string{}
			if c.wantCRC32C != "" {
				wantHeaders["X-Amz-Checksum-Crc32c"] = base64.StdEncoding.EncodeToString(crc[:])
			}
			for name, v := range got {
				lower := strings.ToLower(name)
				if strings.HasPrefix(lower, "x-amz-checksum-") || strings.HasPrefix(lower, "x-amz-sdk-checksum") || lower == "x-amz-trailer" ||
					lower == "content-md5" || lower == "x-amz-decoded-content-length" {
					if want, ok := wantHeaders[name]; !ok || v[0] != want {
						t.Errorf("PUT sent %s: %q (want %q)", name, v, want)
					}
					delete(wantHeaders, name)
				}
			}
			for name, want := range wantHeaders {
				t.Errorf("PUT sent no %s (want %q)", name, want)
			}
			if enc := got.Get("Content-Encoding"); enc != "" {
				t.Errorf("Content-Encoding %q, want none", enc)
			}
			if cl := got.Get("Content-Length"); cl != strconv.Itoa(len(data)) {
				t.Errorf("Content-Length %q, want %d", cl, len(data))
			}
		})
	}
}

// TestDamagedBodyRefused: a PUT whose body is damaged between volgw and
// the server (a proxy flips one bit of every PUT body) is refused by the
// server, which checks the CRC-32C by default and the signed SHA-256 with
// SignPayload, so nothing is stored; the same PUT through an honest path
// stores the object.
func TestDamagedBodyRefused(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	direct := proxy.Director
	proxy.Director = func(r *http.Request) {
		direct(r)
		if r.Method == http.MethodPut && r.ContentLength > 0 {
			r.Body = &bitFlipper{r: r.Body, at: r.ContentLength / 2}
		}
	}
	damaging := httptest.NewServer(proxy)
	defer damaging.Close()
	data := bytes.Repeat([]byte("volgw block "), 1000)
	sum := sha256.Sum256(data)
	for _, sign := range []bool{false, true} {
		t.Run(fmt.Sprintf("SignPayload=%v", sign), func(t *testing.T) {
			ctx := context.Background()
			bad := srv.StoreWith(t, func(c *s3.Config) { c.Endpoint, c.SignPayload = damaging.URL, sign })
			if _, err := bad.Put(ctx, "blocks/x", data, blob.PutOptions{IfNoneMatch: true, SHA256: &sum}); err == nil {
				t.Fatal("a damaged PUT succeeded")
			}
			if _, err := bad.Stat(ctx, "blocks/x"); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("after a damaged PUT, Stat err = %v; want ErrNotFound", err)
			}
			good := srv.StoreWith(t, func(c *s3.Config) { c.SignPayload = sign })
			if _, err := good.Put(ctx, "blocks/x", data, blob.PutOptions{IfNoneMatch: true, SHA256: &sum}); err != nil {
				t.Fatalf("an undamaged PUT: %v", err)
			}
			if got, err := good.Get(ctx, "blocks/x"); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Get = %d bytes, %v", len(got), err)
			}
		})
	}
}

// bitFlipper passes a body through with one bit flipped at offset at.
type bitFlipper struct {
	r   io.ReadCloser
	at  int64
	off int64
}

func (f *bitFlipper) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.at >= f.off && f.at < f.off+int64(n) {
		p[f.at-f.off] ^= 0x10
	}
	f.off += int64(n)
	return n, err
}

func (f *bitFlipper) Close() error { return f.r.Close() }
