// Package bytesize writes and reads byte counts as people do: "1.5 GiB",
// "512MiB". It is the one place volgw's flags, command output and status
// page agree on units.
package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

// Format writes n in binary units with one decimal ("8.0 MiB"), or in
// bytes below 1 KiB ("512 B").
func Format(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n), 0
	for v >= unit && u < 5 {
		v /= unit
		u++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[u-1])
}

// Parse reads a positive size: plain bytes, or a number with KiB, MiB,
// GiB or TiB (KB, MB, GB, TB: powers of ten), a space before the unit
// allowed.
func Parse(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	num, mult := strings.TrimSpace(v), int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number of bytes, optionally with KiB, MiB, GiB or TiB", v)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q is too large", v)
	}
	return n * mult, nil
}
