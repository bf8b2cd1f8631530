package s3

import (
	"context"
	"errors"
	"fmt"
	"io"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/volgw/volgw/internal/blob"
)

// GetRange returns bytes [off, off+n) of the object with a ranged GET. S3
// answers a range that starts past the end with 416 InvalidRange, and one
// that runs past it with the bytes there are: both are ErrRange.
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return nil, err
	}
	if off < 0 || n <= 0 {
		return nil, fmt.Errorf("s3: get %q bytes %d+%d: %w", key, off, n, blob.ErrRange)
	}
	rng := fmt.Sprintf("bytes=%d-%d", off, off+n-1)
	out, err := s.client.GetObject(ctx, &awss3.GetObjectInput{Bucket: &s.bucket, Key: &k, Range: &rng})
	if err != nil {
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidRange" {
			return nil, fmt.Errorf("s3: get %q bytes %d+%d: %w (%w)", key, off, n, blob.ErrRange, err)
		}
		return nil, mapErr("get", key, err)
	}
	defer out.Body.Close()
	b := make([]byte, n)
	got, err := io.ReadFull(out.Body, b)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return nil, fmt.Errorf("s3: get %q bytes %d+%d: the object ends after %d of them: %w", key, off, n, got, blob.ErrRange)
	case err != nil:
		return nil, fmt.Errorf("s3: get %q bytes %d+%d: read body: %w", key, off, n, err)
	}
	var extra [1]byte
	if m, _ := out.Body.Read(extra[:]); m > 0 {
		// A server that ignored the Range header sent the whole object.
		return nil, fmt.Errorf("s3: get %q bytes %d+%d: the response holds more than the range (Range ignored?)", key, off, n)
	}
	return b, nil
}
