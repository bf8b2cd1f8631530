package blob

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxKeyLen is the longest key any Store accepts, in bytes. S3 allows 1024;
// the limit is the same everywhere so that a key valid on one store is valid
// on every other.
const MaxKeyLen = 1024

// ReservedSegmentPrefix starts the names implementations use for their own
// files (the fs store's temporary files). No key segment may start with it,
// so no key can name, list or overwrite such a file.
const ReservedSegmentPrefix = ".volgw-"

// ValidateKey reports, wrapping ErrInvalidKey, why key cannot name an
// object: it must be non-empty valid UTF-8 of at most MaxKeyLen bytes,
// '/'-separated segments that are neither empty, "." nor "..", with no
// leading or trailing '/', no NUL or backslash, and no segment starting with
// ReservedSegmentPrefix. Every Store checks keys with it, so a key that
// would escape a directory (fs) or alias another key is refused everywhere
// alike.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: key is %d bytes, more than %d", ErrInvalidKey, len(key), MaxKeyLen)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidKey, key)
	}
	if strings.ContainsAny(key, "\x00\\") {
		return fmt.Errorf("%w: %q contains NUL or backslash", ErrInvalidKey, key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%w: %q has an empty segment (leading, trailing or doubled '/')", ErrInvalidKey, key)
		case seg == "." || seg == "..":
			return fmt.Errorf("%w: %q has a %q segment", ErrInvalidKey, key, seg)
		case strings.HasPrefix(seg, ReservedSegmentPrefix):
			return fmt.Errorf("%w: %q has a segment starting with the reserved %q", ErrInvalidKey, key, ReservedSegmentPrefix)
		}
	}
	return nil
}
