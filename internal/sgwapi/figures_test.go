package sgwapi

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestCacheFigureMembersMatchTheModel: every member DescribeCache and
// DescribeUploadBuffer can answer with is a member of the model's output
// shape, under the same name, with a JSON type fitting the shape's type
// (double and long are numbers). The figures are pointers so that an
// engine without them leaves them out instead of answering 0.
func TestCacheFigureMembersMatchTheModel(t *testing.T) {
	var model struct {
		Shapes map[string]struct {
			Type    string
			Members map[string]struct{ Shape string }
		}
	}
	if err := json.Unmarshal(modelJSON, &model); err != nil {
		t.Fatal(err)
	}
	pct, used := 12.5, int64(4096)
	for shape, out := range map[string]any{
		"DescribeCacheOutput": describeCacheOutput{GatewayARN: "arn", DiskIds: []string{"d"}, CacheAllocatedInBytes: 1,
			CacheUsedPercentage: &pct, CacheDirtyPercentage: &pct, CacheHitPercentage: &pct, CacheMissPercentage: &pct},
		"DescribeUploadBufferOutput": describeUploadBufferOutput{GatewayARN: "arn", DiskIds: []string{"d"},
			UploadBufferUsedInBytes: &used, UploadBufferAllocatedInBytes: 2},
	} {
		b, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if n := reflect.TypeOf(out).NumField(); len(got) != n {
			t.Errorf("%s: %d members encoded, the struct has %d: %s", shape, len(got), n, b)
		}
		members := model.Shapes[shape].Members
		if len(members) != len(got) {
			t.Errorf("%s: the model has %d members, the answer %d: %s", shape, len(members), len(got), b)
		}
		for name, v := range got {
			m, ok := members[name]
			if !ok {
				t.Errorf("%s: member %s is not in the model", shape, name)
				continue
			}
			var fits bool
			switch typ := model.Shapes[m.Shape].Type; typ {
			case "double", "long", "integer":
				_, fits = v.(float64)
			case "string":
				_, fits = v.(string)
			case "list":
				_, fits = v.([]any)
			}
			if !fits {
				t.Errorf("%s.%s = %v (%T) does not fit the model's %s", shape, name, v, v, model.Shapes[m.Shape].Type)
			}
		}
	}
	// Without figures, the members are absent rather than 0.
	b, _ := json.Marshal(describeCacheOutput{GatewayARN: "arn", DiskIds: []string{}})
	var got map[string]any
	_ = json.Unmarshal(b, &got)
	if _, ok := got["CacheHitPercentage"]; ok {
		t.Errorf("figures answered without an engine reporting them: %s", b)
	}
}
