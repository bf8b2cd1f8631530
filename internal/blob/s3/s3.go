package s3

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/crc32c"
)

// Config says where the bucket is and how to reach it.
type Config struct {
	// Endpoint is the S3 service URL, e.g. "http://127.0.0.1:7070". Empty
	// means AWS S3 itself, resolved from Region.
	Endpoint string
	Bucket   string
	// Prefix is prepended to every key, so several volgw deployments (or
	// tests) can share one bucket. A non-empty prefix without a trailing
	// '/' gets one: Prefix "site-a" stores key "k" as "site-a/k".
	Prefix string
	// Region signs requests. Empty: the AWS chain's (AWS_REGION, shared
	// config), else "us-east-1".
	Region string
	// PathStyle addresses the bucket as <endpoint>/<bucket>/<key> instead
	// of <bucket>.<endpoint>/<key>; most S3-compatible servers need it.
	PathStyle bool
	// AccessKeyID and SecretAccessKey, when both set, are the credentials.
	// Otherwise the standard AWS chain (environment, shared config and
	// credentials files, SSO, instance and container roles) supplies them.
	AccessKeyID     string
	SecretAccessKey string
	// MaxAttempts bounds the attempts of one request, retries included;
	// 0 means 8. Retries back off exponentially with jitter up to
	// MaxBackoff (0 means 5s).
	MaxAttempts int
	MaxBackoff  time.Duration
	// ListPageSize is the MaxKeys of each ListObjectsV2 request; 0 leaves it
	// to the server (1000 on S3). Tests set it small to exercise paging.
	ListPageSize int32
	// ServerSideEncryption asks the store to encrypt what it keeps:
	// "AES256" (SSE-S3) or "aws:kms" (SSE-KMS, with SSEKMSKeyID, or the
	// bucket's default KMS key if that is empty). It is on top of, not
	// instead of, the gateway's own sealing (internal/seal): it protects
	// the store's disks, not the data from the store's operator.
	ServerSideEncryption string
	SSEKMSKeyID          string
	// SignPayload signs every PUT's body with its SHA-256 (SigV4's
	// x-amz-content-sha256, which the server hashes the body again to
	// check) and sends no checksum header. Off (the default), a PUT's
	// body is unsigned and carries its CRC-32C in x-amz-checksum-crc32c,
	// which the server checks instead (see Store.Put). For a server that
	// rejects unsigned payloads or checksum headers.
	SignPayload bool
}

// Store is a blob.Store over one S3 bucket (and key prefix). Safe for
// concurrent use; it holds no state besides the SDK client.
type Store struct {
	client *awss3.Client
	bucket string
	prefix string // "" or ends in '/'
	page   int32
	// sse and sseKMSKeyID are sent with every PUT (Config).
	sse, sseKMSKeyID string
	signPayload      bool
}

var _ blob.Store = (*Store)(nil)

// New returns a store on cfg.Bucket. It does not contact the server: a
// wrong endpoint or missing bucket shows up at the first call.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3: no bucket")
	}
	attempts := cfg.MaxAttempts
	if attempts <= 0 {
		attempts = 8
	}
	maxBackoff := cfg.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 5 * time.Second
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				o.MaxBackoff = maxBackoff
				o.Backoff = retry.NewExponentialJitterBackoff(maxBackoff)
				// The default client-side retry quota fails requests
				// outright once a burst of errors drains it; a storage
				// backend would rather wait out a server's bad minute.
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" && cfg.SecretAccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		// Neither the URL nor the environment named one; S3-compatible
		// servers sign with us-east-1 unless told otherwise.
		awsCfg.Region = "us-east-1"
	}
	client := awss3.NewFromConfig(awsCfg, func(o *awss3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// The SDK has resolved its HTTP client by now (the AWS chain's CA
		// bundle, its defaults mode's dialer); tune a copy of it.
		if b, ok := o.HTTPClient.(*awshttp.BuildableClient); ok {
			o.HTTPClient = b.WithTransportOptions(tuneTransport)
		}
		// Checksums only where S3 requires them: many S3-compatible
		// servers reject or mishandle the SDK's default CRC trailers.
		// Integrity on the wire is TLS's job; content is verified by the
		// volume engine, whose blocks are named by their SHA-256.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	prefix := cfg.Prefix
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &Store{client: client, bucket: cfg.Bucket, prefix: prefix, page: cfg.ListPageSize,
		sse: cfg.ServerSideEncryption, sseKMSKeyID: cfg.SSEKMSKeyID, signPayload: cfg.SignPayload}, nil
}

// Client returns the SDK client, for operations outside blob.Store (tests
// create buckets with it).
func (s *Store) Client() *awss3.Client { return s.client }

func (s *Store) objectKey(key string) (string, error) {
	if err := blob.ValidateKey(key); err != nil {
		return "", err
	}
	return s.prefix + key, nil
}

// Get returns the object's content.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &awss3.GetObjectInput{Bucket: &s.bucket, Key: &k})
	if err != nil {
		return nil, mapErr("get", key, err)
	}
	defer out.Body.Close()
	if out.ContentLength == nil || *out.ContentLength < 0 {
		b, err := io.ReadAll(out.Body)
		if err != nil {
			return nil, fmt.Errorf("s3: get %q: read body: %w", key, err)
		}
		return b, nil
	}
	// Read into exactly Content-Length bytes: a bytes.Buffer grown to it
	// would double (and copy) itself when ReadFrom asks for room past the
	// end to see EOF, which cost a copy and 512 KiB of clearing per block.
	b := make([]byte, *out.ContentLength)
	if n, err := io.ReadFull(out.Body, b); err != nil {
		return nil, fmt.Errorf("s3: get %q: body has %d bytes, Content-Length said %d: %w", key, n, len(b), err)
	}
	var extra [1]byte
	if n, _ := out.Body.Read(extra[:]); n > 0 {
		return nil, fmt.Errorf("s3: get %q: body is longer than its Content-Length %d", key, len(b))
	}
	return b, nil
}

// Stat describes the object with a HEAD request.
func (s *Store) Stat(ctx context.Context, key string) (blob.ObjectInfo, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return blob.ObjectInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &s.bucket, Key: &k})
	if err != nil {
		return blob.ObjectInfo{}, mapErr("stat", key, err)
	}
	return blob.ObjectInfo{
		Key:     key,
		Size:    aws.ToInt64(out.ContentLength),
		ETag:    aws.ToString(out.ETag),
		ModTime: aws.ToTime(out.LastModified),
	}, nil
}

// Put uploads data in one PutObject request, made conditional with
// If-None-Match: * or If-Match: <etag> as opts asks.
//
// The server checks the body it received against a checksum the request
// carries, so a body damaged on the way is refused, not stored. By default
// that checksum is the body's CRC-32C (x-amz-checksum-crc32c) and the body
// is unsigned (x-amz-content-sha256: UNSIGNED-PAYLOAD), as the SDK itself
// does over TLS: the signed SHA-256 over plain HTTP made the server hash
// every byte once more, beside the MD5 of its ETag and, with no checksum
// given, a CRC-64 of its own (versitygw): a fifth to a third of a
// loopback versitygw's CPU per 512 KiB block (BenchmarkPutBlocks), the
// upload's bottleneck on a small machine, where the CRC-32C costs either
// side a few microseconds. A
// signature over the body would add no protection worth that: an
// attacker on a plain-HTTP path can as well alter what a GET returns, and
// what volgw reads back is checked anyway (blocks and pages by their
// SHA-256 names, sealed objects by their authentication tags).
// Config.SignPayload restores the signed SHA-256 (opts.SHA256, when given,
// spares hashing the body for it) and sends no checksum header.
//
// PutObject returns no Last-Modified; the returned ModTime is the
// response's Date header, the server's clock when it stored the object (to
// the second, like Last-Modified), which spares a HEAD per upload.
func (s *Store) Put(ctx context.Context, key string, data []byte, opts blob.PutOptions) (blob.ObjectInfo, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return blob.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return blob.ObjectInfo{}, err
	}
	in := &awss3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &k,
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   aws.String("application/octet-stream"),
	}
	if s.sse != "" {
		in.ServerSideEncryption = types.ServerSideEncryption(s.sse)
		if s.sseKMSKeyID != "" {
			in.SSEKMSKeyId = &s.sseKMSKeyID
		}
	}
	if opts.IfNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	if opts.IfMatch != "" {
		in.IfMatch = aws.String(opts.IfMatch)
	}
	var optFns []func(*awss3.Options)
	switch {
	case !s.signPayload:
		in.ChecksumCRC32C = aws.String(crc32cBase64(data))
		optFns = append(optFns, awss3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
	case opts.SHA256 != nil:
		optFns = append(optFns, presetPayloadHash(hex.EncodeToString(opts.SHA256[:])))
	}
	out, err := s.client.PutObject(ctx, in, optFns...)
	if err != nil {
		err = mapErr("put", key, err)
		if opts.IfMatch != "" && errors.Is(err, blob.ErrNotFound) {
			// S3 answers If-Match on a missing key with 404 NoSuchKey; to
			// the caller it is a compare-and-swap that did not hold.
			return blob.ObjectInfo{}, fmt.Errorf("s3: put %q: no object to match ETag %q: %w", key, opts.IfMatch, blob.ErrPreconditionFailed)
		}
		return blob.ObjectInfo{}, err
	}
	info := blob.ObjectInfo{Key: key, Size: int64(len(data)), ETag: aws.ToString(out.ETag), ModTime: time.Now()}
	if raw, ok := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response); ok {
		if d, err := http.ParseTime(raw.Header.Get("Date")); err == nil {
			info.ModTime = d
		}
	}
	if info.ETag == "" {
		// Some S3-compatible servers omit the ETag from PUT responses;
		// a caller about to compare-and-swap needs it.
		st, err := s.Stat(ctx, key)
		if err != nil {
			return blob.ObjectInfo{}, fmt.Errorf("s3: put %q: written, but no ETag: %w", key, err)
		}
		info.ETag, info.ModTime = st.ETag, st.ModTime
	}
	return info, nil
}

// crc32cBase64 is data's CRC-32C as x-amz-checksum-crc32c carries it: the
// big-endian bytes, base64.
func crc32cBase64(data []byte) string {
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32c.Checksum(data))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// presetPayloadHash gives SigV4 the payload's SHA-256, which the SDK would
// otherwise compute (over plain HTTP) by reading the whole body once more:
// its signing step skips hashing when the hash is already set. Set in the
// Initialize step, after the SDK clears the operation's stack values.
func presetPayloadHash(sum string) func(*awss3.Options) {
	return func(o *awss3.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("volgwPayloadSHA256",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					return next.HandleInitialize(v4.SetPayloadHash(ctx, sum), in)
				}), middleware.After)
		})
	}
}

// Delete removes the object; S3 reports success for a missing key too.
func (s *Store) Delete(ctx context.Context, key string) error {
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &s.bucket, Key: &k}); err != nil {
		if errors.Is(mapErr("delete", key, err), blob.ErrNotFound) {
			return nil
		}
		return mapErr("delete", key, err)
	}
	return nil
}

// List pages through ListObjectsV2, which returns keys in UTF-8 binary
// order, the same lexical order blob.Store promises. Keys that are not
// valid blob keys (objects written by other tools, directory markers) are
// skipped: no blob.Store call could name them.
func (s *Store) List(ctx context.Context, prefix string, fn func(blob.ObjectInfo) error) error {
	in := &awss3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix + prefix)}
	if s.page > 0 {
		in.MaxKeys = aws.Int32(s.page)
	}
	pages := awss3.NewListObjectsV2Paginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return mapErr("list", prefix, err)
		}
		for _, obj := range page.Contents {
			key, ok := strings.CutPrefix(aws.ToString(obj.Key), s.prefix)
			if !ok || blob.ValidateKey(key) != nil {
				continue
			}
			info := blob.ObjectInfo{
				Key:     key,
				Size:    aws.ToInt64(obj.Size),
				ETag:    aws.ToString(obj.ETag),
				ModTime: aws.ToTime(obj.LastModified),
			}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

// mapErr translates S3's errors into blob's sentinels at the edge. It keeps
// the SDK error in the chain too, so context cancellation and the
// provider's detail stay visible to errors.Is and in messages.
func mapErr(op, key string, err error) error {
	var noKey *types.NoSuchKey
	var notFound *types.NotFound
	if errors.As(err, &noKey) || errors.As(err, &notFound) {
		return fmt.Errorf("s3: %s %q: %w (%w)", op, key, blob.ErrNotFound, err)
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchBucket":
			// A configuration error, not an absent object: never let the
			// 404 below turn it into ErrNotFound.
			return fmt.Errorf("s3: %s %q: %w", op, key, err)
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("s3: %s %q: %w (%w)", op, key, blob.ErrNotFound, err)
		case "PreconditionFailed", "ConditionalRequestConflict":
			// ConditionalRequestConflict (409): a concurrent conditional
			// write to the same key won; the caller lost the race.
			return fmt.Errorf("s3: %s %q: %w (%w)", op, key, blob.ErrPreconditionFailed, err)
		}
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) {
		switch respErr.HTTPStatusCode() {
		case http.StatusNotFound:
			if op != "list" {
				return fmt.Errorf("s3: %s %q: %w (%w)", op, key, blob.ErrNotFound, err)
			}
		case http.StatusPreconditionFailed:
			return fmt.Errorf("s3: %s %q: %w (%w)", op, key, blob.ErrPreconditionFailed, err)
		}
	}
	return fmt.Errorf("s3: %s %q: %w", op, key, err)
}
