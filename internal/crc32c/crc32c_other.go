//go:build !amd64

package crc32c

func update(crc uint32, b []byte) uint32 { return updateGeneric(crc, b) }

func sectorsArch(data []byte, out []uint32) { sectors(data, out, updateGeneric) }
