//go:build !volgw_iscsi

package conformance

import "testing"

// StartVolgw would serve a file-backed LUN through volgw's own target; see
// volgw_target.go, built with -tags volgw_iscsi until internal/iscsi's
// Server is committed.
func StartVolgw(t testing.TB, opts VolgwOptions) (Target, error) {
	t.Helper()
	return Target{}, ErrNoVolgwTarget
}
