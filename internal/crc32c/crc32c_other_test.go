//go:build !amd64

package crc32c

// archImplementations has nothing to add: on this architecture Update is
// hash/crc32.
func archImplementations() map[string]func(uint32, []byte) uint32 { return nil }

func archSectorImplementations() map[string]func([]byte, []uint32) { return nil }
