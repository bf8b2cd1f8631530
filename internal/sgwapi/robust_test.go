package sgwapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/volgw/volgw/internal/sgwapi"
)

// TestHandlersNeverPanic feeds every implemented operation inputs that the
// model's validator would refuse (empty, nulls, wrong shapes, absurd
// values), straight to the handlers: each must answer an error or an
// output, never panic, whatever state the gateway is in.
func TestHandlersNeverPanic(t *testing.T) {
	s := newStack(t)
	gw, nic := s.readyGateway(t, "robust")
	vol := s.createVolume(t, createInput(gw, nic, "robust"))
	api := sgwapi.New(s.svc)
	bodies := []string{
		`{}`, `null`, `[]`, `{"GatewayARN":null,"VolumeARN":null,"VolumeARNs":null,"Tags":null}`,
		`{"GatewayARN":""}`, `{"VolumeARNs":[]}`, `{"VolumeARNs":[""]}`, `{"Limit":-1,"Marker":"zzz"}`,
		`{"Limit":0}`, `{"VolumeSizeInBytes":-5}`, `{"VolumeSizeInBytes":1e300}`, `{"StartAt":-1,"RecurrenceInHours":0}`,
		`{"DiskIds":[null,""]}`, `{"Tags":[{"Key":null}]}`, `{"ResourceARN":"arn:aws:ec2:us-east-1::snapshot/snap-0"}`,
		fmt.Sprintf(`{"GatewayARN":%q,"VolumeARN":%q,"ResourceARN":%q,"TargetARN":%q,"Marker":"%s","Limit":1}`, gw, vol, vol, gw+"/target/x", vol),
		fmt.Sprintf(`{"GatewayARN":%q,"TargetName":"robust","NetworkInterfaceId":%q,"VolumeSizeInBytes":1073741824,"ClientToken":"abcde"}`, gw, nic),
	}
	for _, op := range api.Implemented() {
		for _, body := range bodies {
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("%s(%s) panicked: %v", op, body, r)
					}
				}()
				out, err := api.Invoke(context.Background(), op, []byte(body))
				if err == nil {
					if _, merr := json.Marshal(out); merr != nil {
						t.Errorf("%s(%s): output does not encode: %v", op, body, merr)
					}
				}
			}()
		}
	}
}
