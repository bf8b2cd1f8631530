package sealtest

import (
	"strings"
	"testing"

	"github.com/volgw/volgw/internal/seal"
)

// Line returns a keyring line for a new random key named name.
func Line(t testing.TB, name string) string {
	t.Helper()
	l, err := seal.NewKeyLine(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Parse returns the keyring of lines.
func Parse(t testing.TB, lines ...string) *seal.Keyring {
	t.Helper()
	kr, err := seal.ParseKeyring(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// New returns a keyring with a new random key for each name.
func New(t testing.TB, names ...string) *seal.Keyring {
	t.Helper()
	lines := make([]string, len(names))
	for i, n := range names {
		lines[i] = Line(t, n)
	}
	return Parse(t, lines...)
}
