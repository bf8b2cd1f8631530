package conformance

import (
	"errors"
)

// ErrNoVolgwTarget means internal/iscsi does not yet export a target server
// this harness can start. Tests skip on it, saying so; it disappears once
// the server exists.
var ErrNoVolgwTarget = errors.New("conformance: internal/iscsi exports no target server yet")

// VolgwOptions configure StartVolgw.
type VolgwOptions struct {
	// Size of the file behind the LUN; 64 MiB when 0.
	Size int64
	// BackingFile, when set, is used as is; otherwise a sparse file is
	// created in a temporary directory.
	BackingFile string
	IQN         string
	CHAP        *CHAP
}
