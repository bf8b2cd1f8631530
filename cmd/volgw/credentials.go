package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// apiCredentials is the one key pair the API accepts.
type apiCredentials struct {
	AccessKeyID, SecretAccessKey string
	Path                         string // file they came from; "" when from the environment
	Generated                    bool   // created by this start
}

const credentialsFile = "credentials"

// loadCredentials takes the key pair from VOLGW_ACCESS_KEY_ID /
// VOLGW_SECRET_ACCESS_KEY, else from <data-dir>/credentials, else
// generates one there (mode 0600). The file has the AWS shared-credentials
// format, so AWS_SHARED_CREDENTIALS_FILE can point at it.
func loadCredentials(dataDir string, getenv func(string) string) (apiCredentials, error) {
	if c, ok, err := envCredentials(getenv); ok || err != nil {
		return c, err
	}
	path := filepath.Join(dataDir, credentialsFile)
	data, err := os.ReadFile(path)
	if err == nil {
		c, err := parseCredentials(data)
		if err != nil {
			return apiCredentials{}, fmt.Errorf("%s: %w", path, err)
		}
		c.Path = path
		return c, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return apiCredentials{}, fmt.Errorf("read credentials: %w", err)
	}
	c, err := generateCredentials()
	if err != nil {
		return apiCredentials{}, err
	}
	c.Path, c.Generated = path, true
	body := fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", c.AccessKeyID, c.SecretAccessKey)
	// Written to a temporary name and renamed so that a crash never leaves
	// a half-written file that the next start would refuse.
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return apiCredentials{}, fmt.Errorf("write credentials: %w", err)
	}
	if _, err := f.WriteString(body); err != nil {
		f.Close()
		return apiCredentials{}, fmt.Errorf("write credentials: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return apiCredentials{}, fmt.Errorf("write credentials: %w", err)
	}
	if err := f.Close(); err != nil {
		return apiCredentials{}, fmt.Errorf("write credentials: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return apiCredentials{}, fmt.Errorf("write credentials: %w", err)
	}
	return c, nil
}

// envCredentials is the pair VOLGW_ACCESS_KEY_ID / VOLGW_SECRET_ACCESS_KEY
// give, if they are set (both, or it is an error).
func envCredentials(getenv func(string) string) (c apiCredentials, ok bool, err error) {
	id, secret := getenv("VOLGW_ACCESS_KEY_ID"), getenv("VOLGW_SECRET_ACCESS_KEY")
	switch {
	case id != "" && secret != "":
		return apiCredentials{AccessKeyID: id, SecretAccessKey: secret}, true, nil
	case id != "" || secret != "":
		return apiCredentials{}, false, errors.New("set both VOLGW_ACCESS_KEY_ID and VOLGW_SECRET_ACCESS_KEY, or neither")
	}
	return apiCredentials{}, false, nil
}

func parseCredentials(data []byte) (apiCredentials, error) {
	var c apiCredentials
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "aws_access_key_id":
			c.AccessKeyID = strings.TrimSpace(v)
		case "aws_secret_access_key":
			c.SecretAccessKey = strings.TrimSpace(v)
		}
	}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return c, errors.New("no aws_access_key_id / aws_secret_access_key")
	}
	return c, nil
}

// generateCredentials makes a pair shaped like AWS's: a 20-character
// access key ID starting AKIA, a 40-character secret.
func generateCredentials() (apiCredentials, error) {
	const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	const secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	pick := func(alphabet string, n int) (string, error) {
		b := make([]byte, n)
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("generate credentials: %w", err)
		}
		for i := range b {
			b[i] = alphabet[int(b[i])%len(alphabet)] // both alphabets divide 256
		}
		return string(b), nil
	}
	id, err := pick(idAlphabet, 16)
	if err != nil {
		return apiCredentials{}, err
	}
	secret, err := pick(secretAlphabet, 40)
	if err != nil {
		return apiCredentials{}, err
	}
	return apiCredentials{AccessKeyID: "AKIA" + id, SecretAccessKey: secret}, nil
}
