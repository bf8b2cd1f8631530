package awsproto

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"
)

// extModel is a JSON 1.1 service beside Storage Gateway with its own
// target prefix and one operation.
const extModel = `{"metadata":{"apiVersion":"2026-11-24","protocol":"json","targetPrefix":"Ext_20261124"},
 "operations":{"Echo":{"name":"Echo","input":{"shape":"EchoInput"}}},
 "shapes":{"EchoInput":{"type":"structure","required":["Word"],"members":{"Word":{"shape":"Word"}}},
  "Word":{"type":"string","min":1,"max":5}}}`

type echoService struct{ calls []string }

func (s *echoService) Invoke(ctx context.Context, op string, input []byte) (any, error) {
	s.calls = append(s.calls, op+" "+string(input))
	return map[string]string{"Op": op}, nil
}

// TestJSONExtension: a target with an extension's prefix goes to its
// service, validated by its model and signed for storagegateway; Storage
// Gateway's targets still go to Storage; an operation of one is unknown to
// the other.
func TestJSONExtension(t *testing.T) {
	m, err := LoadModel([]byte(extModel))
	if err != nil {
		t.Fatal(err)
	}
	svc, ext := &recordingService{}, &echoService{}
	srv, err := NewServer(ServerConfig{Region: "us-east-1", Credentials: testCreds, Storage: svc, StorageModel: storageGatewayModel(t),
		Extensions: []JSONExtension{{Model: m, Service: ext}}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	now := time.Now()
	for _, c := range []struct {
		target, body string
		status       int
		typ          string
	}{
		{"Ext_20261124.Echo", `{"Word":"hi","Extra":1}`, 200, ""},
		{"Ext_20261124.Echo", `{"Word":"toolong"}`, 400, "ValidationException"},
		{"Ext_20261124.Echo", `{}`, 400, "ValidationException"},
		{"Ext_20261124.ListGateways", `{}`, 400, "UnknownOperationException"},
		{"Ext_20261124.", `{}`, 400, "UnknownOperationException"},
		{"StorageGateway_20130630.Echo", `{}`, 400, "UnknownOperationException"},
		{"StorageGateway_20130630.ListGateways", `{}`, 200, ""},
	} {
		a := postRaw(t, ts, c.target, c.body, true, now)
		if a.status != c.status || c.typ != "" && a.body["__type"] != c.typ {
			t.Errorf("%s %s: %d %v, want %d %s", c.target, c.body, a.status, a.body, c.status, c.typ)
		}
	}
	if a := postRaw(t, ts, "Ext_20261124.Echo", `{"Word":"hi"}`, false, now); a.status != 403 {
		t.Errorf("unsigned: %d %v", a.status, a.body)
	}
	if len(ext.calls) != 1 || ext.calls[0] != `Echo {"Word":"hi"}` || len(svc.Calls()) != 1 {
		t.Errorf("extension got %q, Storage Gateway %q", ext.calls, svc.Calls())
	}
}
