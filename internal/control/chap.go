package control

import (
	"context"
	"errors"

	"github.com/volgw/volgw/internal/catalog"
)

// ChapCredential is one initiator's CHAP secrets on one target.
type ChapCredential struct {
	TargetARN                     string
	InitiatorName                 string
	SecretToAuthenticateInitiator string
	SecretToAuthenticateTarget    string
}

// targetTx finds the volume whose target an ARN names.
func (s *Service) targetTx(tx *catalog.Tx, targetARN string) (catalog.Volume, catalog.Gateway, error) {
	gwARN, _, ok := parseTargetARN(targetARN)
	if !ok {
		return catalog.Volume{}, catalog.Gateway{}, newError(CodeTargetNotFound)
	}
	g, err := s.runningGatewayTx(tx, gwARN)
	if err != nil {
		return catalog.Volume{}, catalog.Gateway{}, err
	}
	vols, err := volumesOf(tx, g.ID)
	if err != nil {
		return catalog.Volume{}, catalog.Gateway{}, err
	}
	for _, v := range vols {
		if v.TargetARN == targetARN {
			return v, g, nil
		}
	}
	return catalog.Volume{}, catalog.Gateway{}, newError(CodeTargetNotFound)
}

// errChapSecretLength is the model's own note on ChapSecret.
var errChapSecretLength = invalidParameters("The secret key must be between 12 and 16 bytes when encoded in UTF-8.")

// chapSecretLength: AWS takes CHAP secrets of 12 to 16 bytes (what Windows'
// initiator accepts), though the model's ChapSecret allows 1 to 100.
func chapSecretLength(secret string) bool { return len(secret) >= 12 && len(secret) <= 16 }

// UpdateChapCredentials sets an initiator's CHAP secrets on a target and
// makes the target enforce them at once.
func (s *Service) UpdateChapCredentials(ctx context.Context, c ChapCredential) (targetARN, initiator string, err error) {
	if !chapSecretLength(c.SecretToAuthenticateInitiator) || (c.SecretToAuthenticateTarget != "" && !chapSecretLength(c.SecretToAuthenticateTarget)) {
		return "", "", errChapSecretLength
	}
	if c.SecretToAuthenticateTarget != "" && c.SecretToAuthenticateTarget == c.SecretToAuthenticateInitiator {
		return "", "", invalidParameters("The secret to authenticate the target must be different from the secret to authenticate the initiator.")
	}
	return s.changeChap(ctx, c.TargetARN, c.InitiatorName, func(tx *catalog.Tx) error {
		return tx.PutChapCredential(catalog.ChapCredential{
			TargetARN: c.TargetARN, InitiatorName: c.InitiatorName,
			SecretToAuthenticateInitiator: c.SecretToAuthenticateInitiator,
			SecretToAuthenticateTarget:    c.SecretToAuthenticateTarget,
		})
	})
}

// DeleteChapCredentials removes an initiator's CHAP secrets from a target.
func (s *Service) DeleteChapCredentials(ctx context.Context, targetARN, initiator string) (string, string, error) {
	return s.changeChap(ctx, targetARN, initiator, func(tx *catalog.Tx) error {
		err := tx.DeleteChapCredential(targetARN, initiator)
		if errors.Is(err, catalog.ErrNotFound) {
			return newError(CodeInitiatorNotFound)
		}
		return err
	})
}

func (s *Service) changeChap(ctx context.Context, targetARN, initiator string, change func(*catalog.Tx) error) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var v catalog.Volume
	err := s.update(func(tx *catalog.Tx) error {
		var err error
		if v, _, err = s.targetTx(tx, targetARN); err != nil {
			return err
		}
		return change(tx)
	})
	if err != nil {
		return "", "", err
	}
	// The catalog holds the new secrets; re-exporting applies them. If
	// this fails the next start applies them. A volume the engine lost is
	// not on the wire: there is nothing to apply them to.
	if s.lostVolume(ctx, v.ID) {
		return targetARN, initiator, nil
	}
	if err := s.export(ctx, v); err != nil {
		return "", "", err
	}
	return targetARN, initiator, nil
}

// DescribeChapCredentials lists a target's CHAP credentials.
func (s *Service) DescribeChapCredentials(ctx context.Context, targetARN string) ([]ChapCredential, error) {
	var out []ChapCredential
	err := s.view(func(tx *catalog.Tx) error {
		if _, _, err := s.targetTx(tx, targetARN); err != nil {
			return err
		}
		creds, err := tx.ChapCredentials(targetARN)
		if err != nil {
			return err
		}
		out = []ChapCredential{}
		for _, c := range creds {
			out = append(out, ChapCredential{
				TargetARN: c.TargetARN, InitiatorName: c.InitiatorName,
				SecretToAuthenticateInitiator: c.SecretToAuthenticateInitiator,
				SecretToAuthenticateTarget:    c.SecretToAuthenticateTarget,
			})
		}
		return nil
	})
	return out, err
}
