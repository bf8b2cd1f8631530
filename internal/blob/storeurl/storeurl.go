// Package storeurl opens the blob.Store a --store URL names. It owns only
// the URL syntax; the stores themselves live in blob/fs and blob/s3.
//
// Accepted forms:
//
//	file:///abs/path                a directory (blob/fs)
//	file://./rel/path, file:rel     a directory relative to the working directory
//	s3://bucket[/prefix][?endpoint=http://127.0.0.1:7070&region=us-east-1&path_style=true]
//
// Other s3 parameters: sse=AES256|aws:kms and sse_kms_key_id (s3.Config's
// ServerSideEncryption and SSEKMSKeyID); sign_payload=true (s3.Config's
// SignPayload: PUTs signed with their body's SHA-256 instead of carrying
// its CRC-32C, for a server that rejects unsigned payloads or checksums).
//
// S3 credentials are never taken from the URL (it ends up in process
// listings and logs). They come from VOLGW_S3_ACCESS_KEY_ID and
// VOLGW_S3_SECRET_ACCESS_KEY when both are set, else from the standard AWS
// chain (AWS_ACCESS_KEY_ID..., shared config files, instance roles). The
// volgw-specific variables come first so that a gateway whose own AWS
// identity is something else can still reach a local S3-compatible store.
package storeurl

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/fs"
	"github.com/volgw/volgw/internal/blob/s3"
)

// ErrBadURL is returned for a --store value that names no store.
var ErrBadURL = errors.New("storeurl: bad store URL")

// Environment variables holding the S3 credentials.
const (
	EnvAccessKeyID     = "VOLGW_S3_ACCESS_KEY_ID"
	EnvSecretAccessKey = "VOLGW_S3_SECRET_ACCESS_KEY"
)

// Target is a parsed store URL: exactly one of Dir and S3 is set.
type Target struct {
	Dir string     // file: the directory, absolute
	S3  *s3.Config // s3: the configuration, without credentials
}

// Parse checks rawURL and says which store it names, without opening it.
func Parse(rawURL string) (Target, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return Target{}, fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	switch u.Scheme {
	case "file":
		return parseFile(rawURL, u)
	case "s3":
		return parseS3(rawURL, u)
	case "":
		return Target{}, fmt.Errorf("%w: %q has no scheme; use file:///abs/path or s3://bucket/prefix", ErrBadURL, rawURL)
	default:
		return Target{}, fmt.Errorf("%w: %q: unknown scheme %q (want file or s3)", ErrBadURL, rawURL, u.Scheme)
	}
}

func parseFile(rawURL string, u *url.URL) (Target, error) {
	if u.RawQuery != "" || u.Fragment != "" {
		return Target{}, fmt.Errorf("%w: %q: a file URL takes no query or fragment", ErrBadURL, rawURL)
	}
	var p string
	switch {
	case u.Opaque != "": // file:rel/path
		p = u.Opaque
	case u.Host == "" || u.Host == "localhost": // file:///abs or file://localhost/abs
		p = u.Path
	case u.Host == "." || u.Host == "..": // file://./rel
		p = u.Host + u.Path
	default:
		return Target{}, fmt.Errorf("%w: %q: file URLs name local paths; host %q is not supported", ErrBadURL, rawURL, u.Host)
	}
	if p == "" {
		return Target{}, fmt.Errorf("%w: %q has no path", ErrBadURL, rawURL)
	}
	abs, err := filepath.Abs(filepath.FromSlash(p))
	if err != nil {
		return Target{}, fmt.Errorf("%w: %q: %w", ErrBadURL, rawURL, err)
	}
	return Target{Dir: abs}, nil
}

func parseS3(rawURL string, u *url.URL) (Target, error) {
	if u.Host == "" {
		return Target{}, fmt.Errorf("%w: %q has no bucket (s3://bucket/prefix)", ErrBadURL, rawURL)
	}
	if u.User != nil {
		return Target{}, fmt.Errorf("%w: %q: credentials do not belong in the URL; set %s and %s", ErrBadURL, rawURL, EnvAccessKeyID, EnvSecretAccessKey)
	}
	if u.Port() != "" {
		return Target{}, fmt.Errorf("%w: %q: the host is the bucket; give the server as ?endpoint=", ErrBadURL, rawURL)
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		if err := blob.ValidateKey(prefix); err != nil {
			return Target{}, fmt.Errorf("%w: %q: prefix: %w", ErrBadURL, rawURL, err)
		}
	}
	cfg := &s3.Config{Bucket: u.Host, Prefix: prefix}
	for name, values := range u.Query() {
		if len(values) != 1 {
			return Target{}, fmt.Errorf("%w: %q: parameter %q given %d times", ErrBadURL, rawURL, name, len(values))
		}
		v := values[0]
		switch name {
		case "endpoint":
			e, err := url.Parse(v)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				return Target{}, fmt.Errorf("%w: %q: endpoint %q is not an http(s) URL", ErrBadURL, rawURL, v)
			}
			cfg.Endpoint = v
		case "region":
			if v == "" {
				return Target{}, fmt.Errorf("%w: %q: empty region", ErrBadURL, rawURL)
			}
			cfg.Region = v
		case "path_style":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return Target{}, fmt.Errorf("%w: %q: path_style=%q is not a boolean", ErrBadURL, rawURL, v)
			}
			cfg.PathStyle = b
		case "sign_payload":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return Target{}, fmt.Errorf("%w: %q: sign_payload=%q is not a boolean", ErrBadURL, rawURL, v)
			}
			cfg.SignPayload = b
		case "sse":
			if v != "AES256" && v != "aws:kms" {
				return Target{}, fmt.Errorf("%w: %q: sse=%q (want AES256 or aws:kms)", ErrBadURL, rawURL, v)
			}
			cfg.ServerSideEncryption = v
		case "sse_kms_key_id":
			if v == "" {
				return Target{}, fmt.Errorf("%w: %q: empty sse_kms_key_id", ErrBadURL, rawURL)
			}
			cfg.SSEKMSKeyID = v
		default:
			return Target{}, fmt.Errorf("%w: %q: unknown parameter %q (want endpoint, region, path_style, sign_payload, sse, sse_kms_key_id)", ErrBadURL, rawURL, name)
		}
	}
	if cfg.SSEKMSKeyID != "" && cfg.ServerSideEncryption != "aws:kms" {
		return Target{}, fmt.Errorf("%w: %q: sse_kms_key_id needs sse=aws:kms", ErrBadURL, rawURL)
	}
	return Target{S3: cfg}, nil
}

// Open parses rawURL and opens the store it names, reading S3 credentials
// from the process environment.
func Open(ctx context.Context, rawURL string) (blob.Store, error) {
	return OpenEnv(ctx, rawURL, os.Getenv)
}

// OpenEnv is Open with the environment injected (tests pass a map's
// lookup).
func OpenEnv(ctx context.Context, rawURL string, getenv func(string) string) (blob.Store, error) {
	t, err := Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if t.Dir != "" {
		return fs.New(t.Dir)
	}
	cfg := *t.S3
	id, secret := getenv(EnvAccessKeyID), getenv(EnvSecretAccessKey)
	if (id == "") != (secret == "") {
		return nil, fmt.Errorf("storeurl: set both %s and %s, or neither", EnvAccessKeyID, EnvSecretAccessKey)
	}
	cfg.AccessKeyID, cfg.SecretAccessKey = id, secret
	return s3.New(ctx, cfg)
}
