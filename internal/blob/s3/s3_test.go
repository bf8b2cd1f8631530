package s3_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
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

// TestPresetSHA256: a Put given the data's SHA-256 signs with it instead of
// hashing again. The server checks the signed hash against the body, so
// the right one stores the object and a wrong one is refused (which shows
// the given hash, not a recomputed one, reached the signature).
func TestPresetSHA256(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	s := srv.Store(t)
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
