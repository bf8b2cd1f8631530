package bytesize

import "testing"

func TestFormatAndParse(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 8 << 20: "8.0 MiB", 3 << 29: "1.5 GiB", 16 << 40: "16.0 TiB"} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
	for s, want := range map[string]int64{"512": 512, "10GiB": 10 << 30, "1 MiB": 1 << 20, "2KB": 2000, " 3 TiB ": 3 << 40, "7B": 7} {
		if got, err := Parse(s); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1GiB", "1.5GiB", "GiB", "9999999TiB", "1 PiB"} {
		if n, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %d, accepted", bad, n)
		}
	}
}
