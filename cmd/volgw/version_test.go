package main

import (
	"runtime/debug"
	"testing"
)

// TestVersionOf: what a build reports without -ldflags: the module
// version `go install …@vX` records, else the VCS revision `go build`
// stamps (with -dirty), else "dev".
func TestVersionOf(t *testing.T) {
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "f988732abcdef0123456789"}, {Key: "vcs.modified", Value: "true"}}
	for _, c := range []struct {
		name string
		info debug.BuildInfo
		want string
	}{
		{"go install @v1.4.0", debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "v1.4.0"},
		{"go build, pseudo-version", debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261123222733-f988732abcde+dirty"}, Settings: vcs},
			"v0.0.0-20261123222733-f988732abcde+dirty"},
		{"go build, devel with VCS", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs}, "dev+f988732abcde-dirty"},
		{"go test", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
	} {
		if got := versionOf(&c.info); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
