package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
)

// activationPage fetches the appliance's activation page with curl, not
// following the redirect, and returns the status, Location and body.
func activationPage(t *testing.T, s *testServer, query string) (status int, location, body string) {
	t.Helper()
	out, err := runTool(t, nil, time.Minute, "curl", "-s", "-w", "\n%{http_code} %{redirect_url}", s.endpoint()+"/?"+query)
	if err != nil {
		t.Fatalf("curl: %v: %s", err, out)
	}
	i := strings.LastIndex(out, "\n")
	status, _ = strconv.Atoi(strings.Fields(out[i+1:] + " ")[0])
	location = strings.TrimSpace(strings.TrimPrefix(out[i+1:], strconv.Itoa(status)))
	return status, location, out[:max(i, 0)]
}

// terraformActivationKey is what Terraform's aws_storagegateway_gateway
// does with gateway_ip_address: GET /?activationRegion=REGION without
// following redirects, require 302, read activationKey from Location.
func terraformActivationKey(endpoint, region string) (string, int, error) {
	client := &http.Client{Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(endpoint + "/?activationRegion=" + region)
	if err != nil {
		return "", 0, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return "", resp.StatusCode, nil
	}
	loc, err := resp.Location()
	if err != nil {
		return "", resp.StatusCode, err
	}
	return loc.Query().Get("activationKey"), resp.StatusCode, nil
}

// leaksInternals reports whether an answer names Go packages or errors.
func leaksInternals(body string) bool {
	for _, s := range []string{"control:", "awsproto", "sgwapi", "catalog", "volgw/internal", ".go:", "panic"} {
		if strings.Contains(body, s) {
			return true
		}
	}
	return false
}

// TestActivationPage: the appliance's page hands out keys only for what
// ActivateGateway accepts (this region, a cached gateway), says why in
// plain words otherwise, and once the appliance is activated serves no
// page at all (the endpoint answers as the API does to any unsigned
// request) — never a Go error or package name. Through curl, the exact
// steps Terraform takes, and the AWS CLI's activate-gateway.
func TestActivationPage(t *testing.T) {
	s := startServer(t, "")
	for _, c := range []struct{ name, query, mention string }{
		{"stored gateway", "activationRegion=us-east-1&gatewayType=STORED", "gatewayType=CACHED"},
		{"tape gateway", "activationRegion=us-east-1&gatewayType=VTL", "gatewayType=CACHED"},
		{"file gateway", "activationRegion=us-east-1&gatewayType=FILE_S3", "gatewayType=CACHED"},
		{"other region", "activationRegion=eu-west-1&gatewayType=CACHED", "us-east-1"},
		{"no region", "activationRegion=&gatewayType=CACHED", "us-east-1"},
	} {
		status, loc, body := activationPage(t, s, c.query)
		if status != http.StatusBadRequest || loc != "" || !strings.Contains(body, c.mention) || leaksInternals(body) {
			t.Errorf("%s: %d %q %q; want 400 naming %s", c.name, status, loc, body, c.mention)
		}
	}
	// Terraform's request (no gatewayType) for another region gets no key.
	if key, status, err := terraformActivationKey(s.endpoint(), "eu-west-1"); err != nil || key != "" || status != http.StatusBadRequest {
		t.Errorf("Terraform's activation GET for eu-west-1: key %q status %d %v", key, status, err)
	}

	// The region's key, fetched as Terraform fetches it, activates the
	// gateway through the AWS CLI.
	key, status, err := terraformActivationKey(s.endpoint(), "us-east-1")
	if err != nil || status != http.StatusFound || key == "" {
		t.Fatalf("Terraform's activation GET: key %q status %d %v", key, status, err)
	}
	cli := awsCLIs(t)["v2"]
	if cli == "" {
		for _, p := range awsCLIs(t) {
			cli = p
		}
	}
	out, ok := runCLI(t, s, cli, "storagegateway", "activate-gateway", "--activation-key", key, "--gateway-name", "page",
		"--gateway-timezone", "GMT", "--gateway-region", "us-east-1", "--gateway-type", "CACHED")
	var act struct{ GatewayARN string }
	if !ok || json.Unmarshal([]byte(out), &act) != nil || !gatewayARNRe.MatchString(act.GatewayARN) {
		t.Fatalf("activate-gateway: %s", out)
	}

	// Activated: no page, no key — the answer to any unsigned request.
	for _, q := range []string{"activationRegion=us-east-1&gatewayType=CACHED", "activationRegion=us-east-1"} {
		status, loc, body := activationPage(t, s, q)
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		if status != http.StatusForbidden || loc != "" || json.Unmarshal([]byte(body), &e) != nil ||
			e.Type != "MissingAuthenticationTokenException" || leaksInternals(body) {
			t.Errorf("activation page after activation (%s): %d %q %q", q, status, loc, body)
		}
	}
	if key, status, _ := terraformActivationKey(s.endpoint(), "us-east-1"); key != "" || status == http.StatusFound {
		t.Errorf("Terraform's activation GET after activation: key %q status %d", key, status)
	}
	// And the gateway is the one activated.
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	list, err := c.sgw.ListGateways(context.Background(), &storagegateway.ListGatewaysInput{})
	if err != nil || len(list.Gateways) != 1 || aws.ToString(list.Gateways[0].GatewayARN) != act.GatewayARN {
		t.Fatalf("ListGateways: %+v %v", list, err)
	}
}
