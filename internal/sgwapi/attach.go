package sgwapi

import (
	"context"

	"github.com/volgw/volgw/internal/control"
)

type attachVolumeInput struct {
	GatewayARN         string `json:"GatewayARN"`
	VolumeARN          string `json:"VolumeARN"`
	TargetName         string `json:"TargetName"`
	NetworkInterfaceId string `json:"NetworkInterfaceId"`
	DiskId             string `json:"DiskId"`
}

type attachVolumeOutput struct {
	VolumeARN string `json:"VolumeARN"`
	TargetARN string `json:"TargetARN"`
}

type detachVolumeInput struct {
	VolumeARN   string `json:"VolumeARN"`
	ForceDetach bool   `json:"ForceDetach"`
}

// attachVolume is AttachVolume: a volume detached from any gateway sharing
// the object store is attached here (control.Service.AttachVolume).
func attachVolume(svc *control.Service) handler {
	return op(func(ctx context.Context, in attachVolumeInput) (any, error) {
		vol, target, err := svc.AttachVolume(ctx, control.AttachVolumeInput{
			GatewayARN: in.GatewayARN, VolumeARN: in.VolumeARN, TargetName: in.TargetName,
			NetworkInterfaceID: in.NetworkInterfaceId, DiskID: in.DiskId,
		})
		if err != nil {
			return nil, err
		}
		return attachVolumeOutput{vol, target}, nil
	})
}

// detachVolume is DetachVolume (control.Service.DetachVolume).
func detachVolume(svc *control.Service) handler {
	return op(func(ctx context.Context, in detachVolumeInput) (any, error) {
		arn, err := svc.DetachVolume(ctx, in.VolumeARN, in.ForceDetach)
		if err != nil {
			return nil, err
		}
		return volumeARNOutput{arn}, nil
	})
}
