package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
)

// The client commands (status, snapshot export/import) reach a running
// volgw serve through its API as any AWS client would: signed requests,
// never its files but the credentials file.

// apiFlags are the flags every client command takes to find the API.
type apiFlags struct {
	endpoint, dataDir, region string
}

func (f *apiFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.endpoint, "endpoint", "http://127.0.0.1:8080", "the API of the running volgw serve")
	fs.StringVar(&f.dataDir, "data-dir", "./volgw-data", "where to find the credentials file when VOLGW_ACCESS_KEY_ID / VOLGW_SECRET_ACCESS_KEY are not set")
	fs.StringVar(&f.region, "region", "us-east-1", "the region volgw serve was started with")
}

// client is the Storage Gateway API client the flags name.
func (f *apiFlags) client(getenv func(string) string) (*apiClient, error) {
	c, err := clientCredentials(f.dataDir, getenv)
	if err != nil {
		return nil, err
	}
	return &apiClient{endpoint: strings.TrimSuffix(f.endpoint, "/"), region: f.region, http: &http.Client{Timeout: 30 * time.Second},
		creds: aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey}}, nil
}

// ebsClient is an EBS direct APIs client (the AWS SDK's) on the same
// endpoint and credentials.
func (f *apiFlags) ebsClient(getenv func(string) string) (*ebs.Client, error) {
	c, err := clientCredentials(f.dataDir, getenv)
	if err != nil {
		return nil, err
	}
	return newEBSClient(f.endpoint, f.region, aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey}), nil
}

// newEBSClient is the AWS SDK's EBS client for a volgw endpoint.
func newEBSClient(endpoint, region string, creds aws.Credentials) *ebs.Client {
	return ebs.New(ebs.Options{
		Region:           region,
		BaseEndpoint:     aws.String(strings.TrimSuffix(endpoint, "/")),
		Credentials:      aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil }),
		RetryMaxAttempts: 5,
	})
}

// apiClient calls the Storage Gateway JSON API of a running volgw.
type apiClient struct {
	endpoint, region string
	creds            aws.Credentials
	http             *http.Client
}

// call invokes op with in and decodes the answer into out; an API error
// comes back with AWS's type and message.
func (c *apiClient) call(ctx context.Context, op string, in, out any) error {
	return c.callTarget(ctx, "StorageGateway_20130630", op, in, out)
}

// callTarget is call for the service of X-Amz-Target prefix target (the
// Storage Gateway API, or volgw's own beside it: cdpapi).
func (c *apiClient) callTarget(ctx context.Context, target, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint+"/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", target+"."+op)
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, c.creds, req, hex.EncodeToString(sum[:]), "storagegateway", c.region, time.Now()); err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		json.Unmarshal(b, &e)
		return fmt.Errorf("%s: %s (HTTP %d): %s", op, e.Type, resp.StatusCode, e.Message)
	}
	return json.Unmarshal(b, out)
}

// clientCredentials is the API key pair a client of this machine's volgw
// uses: VOLGW_ACCESS_KEY_ID / VOLGW_SECRET_ACCESS_KEY, else the data dir's
// credentials file (never generated here).
func clientCredentials(dataDir string, getenv func(string) string) (apiCredentials, error) {
	if c, ok, err := envCredentials(getenv); ok || err != nil {
		return c, err
	}
	path := filepath.Join(dataDir, credentialsFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return apiCredentials{}, fmt.Errorf("no API credentials: set VOLGW_ACCESS_KEY_ID and VOLGW_SECRET_ACCESS_KEY, or give --data-dir of the gateway (%w)", err)
	}
	c, err := parseCredentials(data)
	if err != nil {
		return apiCredentials{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
