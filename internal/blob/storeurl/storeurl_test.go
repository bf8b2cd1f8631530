package storeurl_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/blob/s3"
	"github.com/volgw/volgw/internal/blob/storeurl"
)

func TestParse(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		url string
		dir string
		s3  *s3.Config
	}{
		{url: "file:///var/lib/volgw/store", dir: "/var/lib/volgw/store"},
		{url: "file://localhost/srv/x", dir: "/srv/x"},
		{url: "file:///a/b/../c/", dir: "/a/c"},
		{url: "file://./data/store", dir: filepath.Join(wd, "data/store")},
		{url: "file:rel/dir", dir: filepath.Join(wd, "rel/dir")},
		{url: "s3://bucket", s3: &s3.Config{Bucket: "bucket"}},
		{url: "s3://bucket/", s3: &s3.Config{Bucket: "bucket"}},
		{url: "s3://bucket/site/a/", s3: &s3.Config{Bucket: "bucket", Prefix: "site/a"}},
		{
			url: "s3://my-bucket/volgw?endpoint=http://127.0.0.1:7070&region=eu-west-1&path_style=true",
			s3:  &s3.Config{Bucket: "my-bucket", Prefix: "volgw", Endpoint: "http://127.0.0.1:7070", Region: "eu-west-1", PathStyle: true},
		},
		{url: "s3://b?path_style=0", s3: &s3.Config{Bucket: "b"}},
		{url: "s3://b?sign_payload=true", s3: &s3.Config{Bucket: "b", SignPayload: true}},
		{url: "s3://b?sign_payload=false", s3: &s3.Config{Bucket: "b"}},
		{url: "s3://b?sse=AES256", s3: &s3.Config{Bucket: "b", ServerSideEncryption: "AES256"}},
		{url: "s3://b?sse=aws:kms&sse_kms_key_id=arn:aws:kms:us-east-1:123456789012:key/k1", s3: &s3.Config{Bucket: "b", ServerSideEncryption: "aws:kms", SSEKMSKeyID: "arn:aws:kms:us-east-1:123456789012:key/k1"}},
		{url: "s3://b?endpoint=https://s3.example.com%3A9000", s3: &s3.Config{Bucket: "b", Endpoint: "https://s3.example.com:9000"}},
	} {
		got, err := storeurl.Parse(c.url)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.url, err)
			continue
		}
		if got.Dir != c.dir {
			t.Errorf("Parse(%q).Dir = %q, want %q", c.url, got.Dir, c.dir)
		}
		switch {
		case c.s3 == nil && got.S3 != nil:
			t.Errorf("Parse(%q).S3 = %+v, want none", c.url, *got.S3)
		case c.s3 != nil && got.S3 == nil:
			t.Errorf("Parse(%q).S3 = nil, want %+v", c.url, *c.s3)
		case c.s3 != nil && *got.S3 != *c.s3:
			t.Errorf("Parse(%q).S3 = %+v, want %+v", c.url, *got.S3, *c.s3)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, u := range []string{
		"", "/abs/path", "relative", "http://x/y", "file://", "file://host/path",
		"file:///x?y=1", "s3://", "s3:///prefix", "s3://b?endpoint=127.0.0.1:7070",
		"s3://b?endpoint=ftp://x", "s3://b?path_style=maybe", "s3://b?regoin=x",
		"s3://b?region=", "s3://b?region=a&region=b", "s3://key:secret@b/p",
		"s3://b:7070/p", "s3://b/a/../p", "s3://b/a//p", "%zz",
		"s3://b?sse=aes", "s3://b?sse_kms_key_id=k", "s3://b?sse=AES256&sse_kms_key_id=k", "s3://b?sse=aws:kms&sse_kms_key_id=",
		"s3://b?sign_payload=yes",
	} {
		if got, err := storeurl.Parse(u); !errors.Is(err, storeurl.ErrBadURL) {
			t.Errorf("Parse(%q) = %+v, %v; want ErrBadURL", u, got, err)
		}
	}
}

func TestOpenFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := storeurl.Open(context.Background(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(context.Background(), "k", []byte("v"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "k")); err != nil || string(got) != "v" {
		t.Errorf("file behind key k = %q, %v", got, err)
	}
}

func TestOpenS3(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	env := map[string]string{
		storeurl.EnvAccessKeyID:     srv.AccessKeyID,
		storeurl.EnvSecretAccessKey: srv.SecretAccessKey,
	}
	ctx := context.Background()
	u := "s3://" + srv.Bucket + "/pfx?endpoint=" + srv.Endpoint + "&region=" + srv.Region + "&path_style=true"
	s, err := storeurl.OpenEnv(ctx, u, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "k", []byte("v"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// The object is where the URL's prefix says.
	whole, err := s3.New(ctx, srv.Config(""))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := whole.Get(ctx, "pfx/k"); err != nil || string(got) != "v" {
		t.Errorf("pfx/k = %q, %v", got, err)
	}

	delete(env, storeurl.EnvSecretAccessKey)
	if _, err := storeurl.OpenEnv(ctx, u, func(k string) string { return env[k] }); err == nil {
		t.Error("OpenEnv with only the access key id set succeeded")
	}
}
