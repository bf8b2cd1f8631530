package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/volgw/volgw/internal/seal"
)

// envEncryptionKeys holds a keyring's contents (entries separated by
// newlines or ';') when --encryption-keys is not given.
const envEncryptionKeys = "VOLGW_ENCRYPTION_KEYS"

// readKeyring reads the keyring from path (--encryption-keys), else from
// $VOLGW_ENCRYPTION_KEYS: nil when neither is set.
func readKeyring(path string, getenv func(string) string) (*seal.Keyring, error) {
	var kr *seal.Keyring
	var err error
	switch env := getenv(envEncryptionKeys); {
	case path != "":
		kr, err = seal.LoadKeyring(path)
	case env != "":
		kr, err = seal.ParseKeyring(strings.NewReader(env))
	}
	if err != nil {
		return nil, fmt.Errorf("encryption keys: %w", err)
	}
	return kr, nil
}

// loadKeyring reads the keyring serve seals volumes and the catalog's copy
// with: nil when none is configured. Only names and key IDs are logged,
// never secrets.
func loadKeyring(o serveOptions, getenv func(string) string, log *slog.Logger) (*seal.Keyring, error) {
	kr, err := readKeyring(o.EncryptionKeys, getenv)
	if err != nil {
		return nil, err
	}
	if o.EncryptionDefaultKey != "" {
		if err := kr.SetDefault(o.EncryptionDefaultKey); err != nil {
			return nil, fmt.Errorf("--encryption-default-key: %w", err)
		}
	}
	if kr.Len() > 0 {
		def := "none (volumes without KMSKey are not sealed)"
		if k := kr.Default(); k != nil {
			def = k.String()
		}
		log.Info("encryption at rest", "keys", kr.Len(), "default_key", def, "compress", o.Compress)
	}
	return kr, nil
}

// keyCommand is `volgw key new NAME`: it prints a keyring line with a new
// random key, to append to the --encryption-keys file.
func keyCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) != 2 || args[0] != "new" {
		fmt.Fprintln(stderr, "usage: volgw key new NAME   (NAME: a word or a KMS key ARN; append the line to the --encryption-keys file)")
		return errUsage
	}
	line, err := seal.NewKeyLine(args[1])
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, line)
	return nil
}
