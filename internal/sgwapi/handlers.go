package sgwapi

import (
	"context"

	"github.com/volgw/volgw/internal/control"
)

type gatewayARNInput struct {
	GatewayARN string `json:"GatewayARN"`
}

type gatewayARNOutput struct {
	GatewayARN string `json:"GatewayARN"`
}

type volumeARNInput struct {
	VolumeARN string `json:"VolumeARN"`
}

type volumeARNOutput struct {
	VolumeARN string `json:"VolumeARN"`
}

type diskIDsInput struct {
	GatewayARN string   `json:"GatewayARN"`
	DiskIds    []string `json:"DiskIds"`
}

type activateGatewayInput struct {
	ActivationKey   string `json:"ActivationKey"`
	GatewayName     string `json:"GatewayName"`
	GatewayTimezone string `json:"GatewayTimezone"`
	GatewayRegion   string `json:"GatewayRegion"`
	GatewayType     string `json:"GatewayType"`
	Tags            []Tag  `json:"Tags"`
}

type listInput struct {
	Marker string `json:"Marker"`
	Limit  *int   `json:"Limit"`
}

type gatewaySummary struct {
	GatewayARN              string `json:"GatewayARN"`
	GatewayId               string `json:"GatewayId"`
	GatewayName             string `json:"GatewayName,omitempty"`
	GatewayType             string `json:"GatewayType"`
	GatewayOperationalState string `json:"GatewayOperationalState"`
	HostEnvironment         string `json:"HostEnvironment"`
}

type listGatewaysOutput struct {
	Gateways []gatewaySummary `json:"Gateways"`
	Marker   string           `json:"Marker,omitempty"`
}

type networkInterface struct {
	Ipv4Address string `json:"Ipv4Address"`
}

type describeGatewayInformationOutput struct {
	GatewayARN               string             `json:"GatewayARN"`
	GatewayId                string             `json:"GatewayId"`
	GatewayName              string             `json:"GatewayName,omitempty"`
	GatewayTimezone          string             `json:"GatewayTimezone,omitempty"`
	GatewayState             string             `json:"GatewayState"`
	GatewayNetworkInterfaces []networkInterface `json:"GatewayNetworkInterfaces"`
	GatewayType              string             `json:"GatewayType"`
	Tags                     []Tag              `json:"Tags"`
	CloudWatchLogGroupARN    string             `json:"CloudWatchLogGroupARN,omitempty"`
	HostEnvironment          string             `json:"HostEnvironment"`
	EndpointType             string             `json:"EndpointType"`
	SoftwareVersion          string             `json:"SoftwareVersion,omitempty"` // software.go
}

type updateGatewayInformationInput struct {
	GatewayARN            string  `json:"GatewayARN"`
	GatewayName           *string `json:"GatewayName"`
	GatewayTimezone       *string `json:"GatewayTimezone"`
	CloudWatchLogGroupARN *string `json:"CloudWatchLogGroupARN"`
}

type updateGatewayInformationOutput struct {
	GatewayARN  string `json:"GatewayARN"`
	GatewayName string `json:"GatewayName,omitempty"`
}

type disk struct {
	DiskId             string `json:"DiskId"`
	DiskPath           string `json:"DiskPath"`
	DiskNode           string `json:"DiskNode"`
	DiskStatus         string `json:"DiskStatus"`
	DiskSizeInBytes    int64  `json:"DiskSizeInBytes"`
	DiskAllocationType string `json:"DiskAllocationType"`
}

type listLocalDisksOutput struct {
	GatewayARN string `json:"GatewayARN"`
	Disks      []disk `json:"Disks"`
}

type describeCacheOutput struct {
	GatewayARN            string   `json:"GatewayARN"`
	DiskIds               []string `json:"DiskIds"`
	CacheAllocatedInBytes int64    `json:"CacheAllocatedInBytes"`
	CacheUsedPercentage   *float64 `json:"CacheUsedPercentage,omitempty"`
	CacheDirtyPercentage  *float64 `json:"CacheDirtyPercentage,omitempty"`
	CacheHitPercentage    *float64 `json:"CacheHitPercentage,omitempty"`
	CacheMissPercentage   *float64 `json:"CacheMissPercentage,omitempty"`
}

type describeUploadBufferOutput struct {
	GatewayARN                   string   `json:"GatewayARN"`
	DiskIds                      []string `json:"DiskIds"`
	UploadBufferUsedInBytes      *int64   `json:"UploadBufferUsedInBytes,omitempty"`
	UploadBufferAllocatedInBytes int64    `json:"UploadBufferAllocatedInBytes"`
}

type createCachediSCSIVolumeInput struct {
	GatewayARN         string `json:"GatewayARN"`
	VolumeSizeInBytes  int64  `json:"VolumeSizeInBytes"`
	SnapshotId         string `json:"SnapshotId"`
	TargetName         string `json:"TargetName"`
	SourceVolumeARN    string `json:"SourceVolumeARN"`
	NetworkInterfaceId string `json:"NetworkInterfaceId"`
	ClientToken        string `json:"ClientToken"`
	KMSEncrypted       bool   `json:"KMSEncrypted"`
	KMSKey             string `json:"KMSKey"`
	Tags               []Tag  `json:"Tags"`
}

type createCachediSCSIVolumeOutput struct {
	VolumeARN string `json:"VolumeARN"`
	TargetARN string `json:"TargetARN"`
}

type describeCachediSCSIVolumesInput struct {
	VolumeARNs []string `json:"VolumeARNs"`
}

type volumeISCSIAttributes struct {
	TargetARN            string `json:"TargetARN"`
	NetworkInterfaceId   string `json:"NetworkInterfaceId"`
	NetworkInterfacePort int    `json:"NetworkInterfacePort"`
	LunNumber            int    `json:"LunNumber"`
	ChapEnabled          bool   `json:"ChapEnabled"`
}

type cachediSCSIVolume struct {
	VolumeARN              string                 `json:"VolumeARN"`
	VolumeId               string                 `json:"VolumeId"`
	VolumeType             string                 `json:"VolumeType"`
	VolumeStatus           string                 `json:"VolumeStatus"`
	VolumeAttachmentStatus string                 `json:"VolumeAttachmentStatus"`
	VolumeSizeInBytes      int64                  `json:"VolumeSizeInBytes"`
	VolumeProgress         *float64               `json:"VolumeProgress,omitempty"`
	SourceSnapshotId       string                 `json:"SourceSnapshotId,omitempty"`
	VolumeiSCSIAttributes  *volumeISCSIAttributes `json:"VolumeiSCSIAttributes,omitempty"` // nil: not attached (no target)
	CreatedDate            *epoch                 `json:"CreatedDate,omitempty"`
	VolumeUsedInBytes      *int64                 `json:"VolumeUsedInBytes,omitempty"`
	KMSKey                 string                 `json:"KMSKey,omitempty"`
	TargetName             string                 `json:"TargetName"`
}

type describeCachediSCSIVolumesOutput struct {
	CachediSCSIVolumes []cachediSCSIVolume `json:"CachediSCSIVolumes"`
}

type listVolumesInput struct {
	GatewayARN string `json:"GatewayARN"`
	Marker     string `json:"Marker"`
	Limit      *int   `json:"Limit"`
}

type volumeInfo struct {
	VolumeARN              string `json:"VolumeARN"`
	VolumeId               string `json:"VolumeId"`
	GatewayARN             string `json:"GatewayARN"`
	GatewayId              string `json:"GatewayId"`
	VolumeType             string `json:"VolumeType"`
	VolumeSizeInBytes      int64  `json:"VolumeSizeInBytes"`
	VolumeAttachmentStatus string `json:"VolumeAttachmentStatus"`
}

type listVolumesOutput struct {
	GatewayARN  string       `json:"GatewayARN,omitempty"`
	Marker      string       `json:"Marker,omitempty"`
	VolumeInfos []volumeInfo `json:"VolumeInfos"`
}

type listVolumeInitiatorsOutput struct {
	Initiators []string `json:"Initiators"`
}

type volumeRecoveryPointInfo struct {
	VolumeARN               string `json:"VolumeARN"`
	VolumeSizeInBytes       int64  `json:"VolumeSizeInBytes"`
	VolumeUsageInBytes      int64  `json:"VolumeUsageInBytes"`
	VolumeRecoveryPointTime string `json:"VolumeRecoveryPointTime"`
}

type listVolumeRecoveryPointsOutput struct {
	GatewayARN               string                    `json:"GatewayARN"`
	VolumeRecoveryPointInfos []volumeRecoveryPointInfo `json:"VolumeRecoveryPointInfos"`
}

type snapshotInput struct {
	VolumeARN           string `json:"VolumeARN"`
	SnapshotDescription string `json:"SnapshotDescription"`
	Tags                []Tag  `json:"Tags"`
}

type createSnapshotFromVolumeRecoveryPointOutput struct {
	SnapshotId              string `json:"SnapshotId"`
	VolumeARN               string `json:"VolumeARN"`
	VolumeRecoveryPointTime string `json:"VolumeRecoveryPointTime"`
}

type createSnapshotOutput struct {
	VolumeARN  string `json:"VolumeARN"`
	SnapshotId string `json:"SnapshotId"`
}

type addTagsInput struct {
	ResourceARN string `json:"ResourceARN"`
	Tags        []Tag  `json:"Tags"`
}

type removeTagsInput struct {
	ResourceARN string   `json:"ResourceARN"`
	TagKeys     []string `json:"TagKeys"`
}

type resourceARNOutput struct {
	ResourceARN string `json:"ResourceARN"`
}

type listTagsInput struct {
	ResourceARN string `json:"ResourceARN"`
	Marker      string `json:"Marker"`
	Limit       *int   `json:"Limit"`
}

type listTagsOutput struct {
	ResourceARN string `json:"ResourceARN"`
	Marker      string `json:"Marker,omitempty"`
	Tags        []Tag  `json:"Tags"`
}

type updateSnapshotScheduleInput struct {
	VolumeARN         string `json:"VolumeARN"`
	StartAt           *int   `json:"StartAt"`
	RecurrenceInHours *int   `json:"RecurrenceInHours"`
	Description       string `json:"Description"`
	Tags              []Tag  `json:"Tags"`
}

type describeSnapshotScheduleOutput struct {
	VolumeARN         string `json:"VolumeARN"`
	StartAt           *int   `json:"StartAt,omitempty"`
	RecurrenceInHours *int   `json:"RecurrenceInHours,omitempty"`
	Description       string `json:"Description,omitempty"`
	Timezone          string `json:"Timezone,omitempty"`
	Tags              []Tag  `json:"Tags,omitempty"`
}

type chapCredentials struct {
	TargetARN                     string `json:"TargetARN"`
	InitiatorName                 string `json:"InitiatorName"`
	SecretToAuthenticateInitiator string `json:"SecretToAuthenticateInitiator"`
	SecretToAuthenticateTarget    string `json:"SecretToAuthenticateTarget,omitempty"`
}

type targetARNInput struct {
	TargetARN     string `json:"TargetARN"`
	InitiatorName string `json:"InitiatorName"`
}

type targetInitiatorOutput struct {
	TargetARN     string `json:"TargetARN"`
	InitiatorName string `json:"InitiatorName"`
}

type describeChapCredentialsOutput struct {
	ChapCredentials []chapCredentials `json:"ChapCredentials"`
}

// handlers maps every implemented operation to its handler.
func handlers(svc *control.Service) map[string]handler {
	return map[string]handler{
		"ActivateGateway": op(func(ctx context.Context, in activateGatewayInput) (any, error) {
			arn, err := svc.ActivateGateway(ctx, control.ActivateGatewayInput{
				ActivationKey: in.ActivationKey, GatewayName: in.GatewayName, GatewayTimezone: in.GatewayTimezone,
				GatewayRegion: in.GatewayRegion, GatewayType: in.GatewayType, Tags: toControlTags(in.Tags),
			})
			return gatewayARNOutput{arn}, err
		}),
		"ListGateways": op(func(ctx context.Context, in listInput) (any, error) {
			gs, next, err := svc.ListGateways(ctx, in.Marker, intOf(in.Limit))
			if err != nil {
				return nil, err
			}
			out := listGatewaysOutput{Gateways: []gatewaySummary{}, Marker: next}
			for _, g := range gs {
				out.Gateways = append(out.Gateways, gatewaySummary{
					GatewayARN: g.GatewayARN, GatewayId: g.GatewayID, GatewayName: g.GatewayName,
					GatewayType: g.GatewayType, GatewayOperationalState: g.GatewayOperationalState,
					HostEnvironment: g.HostEnvironment,
				})
			}
			return out, nil
		}),
		"DescribeGatewayInformation": op(func(ctx context.Context, in gatewayARNInput) (any, error) {
			g, err := svc.DescribeGatewayInformation(ctx, in.GatewayARN)
			if err != nil {
				return nil, err
			}
			out := describeGatewayInformationOutput{
				GatewayARN: g.GatewayARN, GatewayId: g.GatewayID, GatewayName: g.GatewayName,
				GatewayTimezone: g.GatewayTimezone, GatewayState: g.GatewayState, GatewayType: g.GatewayType,
				Tags: fromControlTags(g.Tags), CloudWatchLogGroupARN: g.CloudWatchLogGroupARN,
				HostEnvironment: g.HostEnvironment, EndpointType: "STANDARD",
				SoftwareVersion: svc.SoftwareVersion(),
			}
			for _, ni := range g.GatewayNetworkInterfaces {
				out.GatewayNetworkInterfaces = append(out.GatewayNetworkInterfaces, networkInterface{ni.Ipv4Address})
			}
			return out, nil
		}),
		"UpdateGatewayInformation": op(func(ctx context.Context, in updateGatewayInformationInput) (any, error) {
			arn, name, err := svc.UpdateGatewayInformation(ctx, control.UpdateGatewayInformationInput{
				GatewayARN: in.GatewayARN, GatewayName: in.GatewayName, GatewayTimezone: in.GatewayTimezone,
				CloudWatchLogGroupARN: in.CloudWatchLogGroupARN,
			})
			return updateGatewayInformationOutput{arn, name}, err
		}),
		"ShutdownGateway": op(func(ctx context.Context, in gatewayARNInput) (any, error) {
			arn, err := svc.ShutdownGateway(ctx, in.GatewayARN)
			return gatewayARNOutput{arn}, err
		}),
		"StartGateway": op(func(ctx context.Context, in gatewayARNInput) (any, error) {
			arn, err := svc.StartGateway(ctx, in.GatewayARN)
			return gatewayARNOutput{arn}, err
		}),
		"DeleteGateway": op(func(ctx context.Context, in gatewayARNInput) (any, error) {
			arn, err := svc.DeleteGateway(ctx, in.GatewayARN)
			return gatewayARNOutput{arn}, err
		}),
		"ListLocalDisks": op(func(ctx context.Context, in gatewayARNInput) (any, error) {
			disks, err := svc.ListLocalDisks(ctx, in.GatewayARN)
			if err != nil {
				return nil, err
			}
			out := listLocalDisksOutput{GatewayARN: in.GatewayARN, Disks: []disk{}}
			for _, d := range disks {
				out.Disks = append(out.Disks, disk{d.DiskID, d.DiskPath, d.DiskNode, d.DiskStatus, d.DiskSizeInBytes, d.DiskAllocationType})
			}
			return out, nil
		}),
		"AddCache": op(func(ctx context.Context, in diskIDsInput) (any, error) {
			arn, err := svc.AddCache(ctx, in.GatewayARN, in.DiskIds)
			return gatewayARNOutput{arn}, err
		}),
		"AddUploadBuffer": op(func(ctx context.Context, in diskIDsInput) (any, error) {
			arn, err := svc.AddUploadBuffer(ctx, in.GatewayARN, in.DiskIds)
			return gatewayARNOutput{arn}, err
		}),
		"DescribeCache": op(func(ctx context.Context, in gatewayARNInput) (any, error) {
			c, err := svc.DescribeCache(ctx, in.GatewayARN)
			if err != nil {
				return nil, err
			}
			out := describeCacheOutput{GatewayARN: c.GatewayARN, DiskIds: c.DiskIDs, CacheAllocatedInBytes: c.CacheAllocatedInBytes}
			if st := c.Stats; st != nil {
				out.CacheUsedPercentage, out.CacheDirtyPercentage = &st.UsedPercent, &st.DirtyPercent
				out.CacheHitPercentage, out.CacheMissPercentage = &st.HitPercent, &st.MissPercent
			}
			return out, nil
		}),
		"DescribeUploadBuffer": op(func(ctx context.Context, in gatewayARNInput) (any, error) {
			b, err := svc.DescribeUploadBuffer(ctx, in.GatewayARN)
			if err != nil {
				return nil, err
			}
			return describeUploadBufferOutput{GatewayARN: b.GatewayARN, DiskIds: b.DiskIDs,
				UploadBufferUsedInBytes: b.UsedInBytes, UploadBufferAllocatedInBytes: b.AllocatedInBytes}, nil
		}),
		"CreateCachediSCSIVolume": op(func(ctx context.Context, in createCachediSCSIVolumeInput) (any, error) {
			vol, target, err := svc.CreateCachediSCSIVolume(ctx, control.CreateCachediSCSIVolumeInput{
				GatewayARN: in.GatewayARN, VolumeSizeInBytes: in.VolumeSizeInBytes, SnapshotID: in.SnapshotId,
				TargetName: in.TargetName, SourceVolumeARN: in.SourceVolumeARN, NetworkInterfaceID: in.NetworkInterfaceId,
				ClientToken: in.ClientToken, KMSEncrypted: in.KMSEncrypted, KMSKey: in.KMSKey, Tags: toControlTags(in.Tags),
			})
			return createCachediSCSIVolumeOutput{vol, target}, err
		}),
		"DescribeCachediSCSIVolumes": op(func(ctx context.Context, in describeCachediSCSIVolumesInput) (any, error) {
			vols, err := svc.DescribeCachediSCSIVolumes(ctx, in.VolumeARNs)
			if err != nil {
				return nil, err
			}
			out := describeCachediSCSIVolumesOutput{CachediSCSIVolumes: []cachediSCSIVolume{}}
			for _, v := range vols {
				var iscsi *volumeISCSIAttributes
				if v.ISCSI.TargetARN != "" {
					iscsi = &volumeISCSIAttributes{
						TargetARN: v.ISCSI.TargetARN, NetworkInterfaceId: v.ISCSI.NetworkInterfaceID,
						NetworkInterfacePort: v.ISCSI.NetworkInterfacePort, LunNumber: v.ISCSI.LunNumber,
						ChapEnabled: v.ISCSI.ChapEnabled,
					}
				}
				out.CachediSCSIVolumes = append(out.CachediSCSIVolumes, cachediSCSIVolume{
					VolumeARN: v.VolumeARN, VolumeId: v.VolumeID, VolumeType: v.VolumeType, VolumeStatus: v.VolumeStatus,
					VolumeAttachmentStatus: v.VolumeAttachmentStatus, VolumeSizeInBytes: v.VolumeSizeInBytes,
					VolumeProgress: v.VolumeProgress, SourceSnapshotId: v.SourceSnapshotID,
					VolumeiSCSIAttributes: iscsi,
					CreatedDate:           epochPtr(v.CreatedDate), VolumeUsedInBytes: v.VolumeUsedInBytes,
					KMSKey: v.KMSKey, TargetName: v.TargetName,
				})
			}
			return out, nil
		}),
		"ListVolumes": op(func(ctx context.Context, in listVolumesInput) (any, error) {
			arn, vols, next, err := svc.ListVolumes(ctx, in.GatewayARN, in.Marker, intOf(in.Limit))
			if err != nil {
				return nil, err
			}
			out := listVolumesOutput{GatewayARN: arn, Marker: next, VolumeInfos: []volumeInfo{}}
			for _, v := range vols {
				out.VolumeInfos = append(out.VolumeInfos, volumeInfo{v.VolumeARN, v.VolumeID, v.GatewayARN, v.GatewayID,
					v.VolumeType, v.VolumeSizeInBytes, v.VolumeAttachmentStatus})
			}
			return out, nil
		}),
		"AttachVolume": attachVolume(svc),
		"DetachVolume": detachVolume(svc),
		"DeleteVolume": op(func(ctx context.Context, in volumeARNInput) (any, error) {
			arn, err := svc.DeleteVolume(ctx, in.VolumeARN)
			return volumeARNOutput{arn}, err
		}),
		"ListVolumeInitiators": op(func(ctx context.Context, in volumeARNInput) (any, error) {
			ini, err := svc.ListVolumeInitiators(ctx, in.VolumeARN)
			return listVolumeInitiatorsOutput{ini}, err
		}),
		"ListVolumeRecoveryPoints": op(func(ctx context.Context, in gatewayARNInput) (any, error) {
			arn, rps, err := svc.ListVolumeRecoveryPoints(ctx, in.GatewayARN)
			if err != nil {
				return nil, err
			}
			out := listVolumeRecoveryPointsOutput{GatewayARN: arn, VolumeRecoveryPointInfos: []volumeRecoveryPointInfo{}}
			for _, rp := range rps {
				out.VolumeRecoveryPointInfos = append(out.VolumeRecoveryPointInfos, volumeRecoveryPointInfo(rp))
			}
			return out, nil
		}),
		"CreateSnapshotFromVolumeRecoveryPoint": op(func(ctx context.Context, in snapshotInput) (any, error) {
			id, arn, t, err := svc.CreateSnapshotFromVolumeRecoveryPoint(ctx, control.SnapshotInput{
				VolumeARN: in.VolumeARN, SnapshotDescription: in.SnapshotDescription, Tags: toControlTags(in.Tags),
			})
			return createSnapshotFromVolumeRecoveryPointOutput{id, arn, t}, err
		}),
		"CreateSnapshot": op(func(ctx context.Context, in snapshotInput) (any, error) {
			id, arn, err := svc.CreateSnapshot(ctx, control.SnapshotInput{
				VolumeARN: in.VolumeARN, SnapshotDescription: in.SnapshotDescription, Tags: toControlTags(in.Tags),
			})
			return createSnapshotOutput{VolumeARN: arn, SnapshotId: id}, err
		}),
		"AddTagsToResource": op(func(ctx context.Context, in addTagsInput) (any, error) {
			arn, err := svc.AddTagsToResource(ctx, in.ResourceARN, toControlTags(in.Tags))
			return resourceARNOutput{arn}, err
		}),
		"RemoveTagsFromResource": op(func(ctx context.Context, in removeTagsInput) (any, error) {
			arn, err := svc.RemoveTagsFromResource(ctx, in.ResourceARN, in.TagKeys)
			return resourceARNOutput{arn}, err
		}),
		"ListTagsForResource": op(func(ctx context.Context, in listTagsInput) (any, error) {
			tags, next, err := svc.ListTagsForResource(ctx, in.ResourceARN, in.Marker, intOf(in.Limit))
			return listTagsOutput{ResourceARN: in.ResourceARN, Marker: next, Tags: fromControlTags(tags)}, err
		}),
		"UpdateSnapshotSchedule": op(func(ctx context.Context, in updateSnapshotScheduleInput) (any, error) {
			arn, err := svc.UpdateSnapshotSchedule(ctx, control.SnapshotSchedule{
				VolumeARN: in.VolumeARN, StartAt: intOf(in.StartAt), RecurrenceInHours: intOf(in.RecurrenceInHours),
				Description: in.Description, Tags: toControlTags(in.Tags),
			})
			return volumeARNOutput{arn}, err
		}),
		"DescribeSnapshotSchedule": op(func(ctx context.Context, in volumeARNInput) (any, error) {
			s, err := svc.DescribeSnapshotSchedule(ctx, in.VolumeARN)
			if err != nil {
				return nil, err
			}
			out := describeSnapshotScheduleOutput{VolumeARN: s.VolumeARN, Timezone: s.Timezone}
			if s.Exists {
				out.StartAt, out.RecurrenceInHours = &s.StartAt, &s.RecurrenceInHours
				out.Description, out.Tags = s.Description, fromControlTags(s.Tags)
			}
			return out, nil
		}),
		"DeleteSnapshotSchedule": op(func(ctx context.Context, in volumeARNInput) (any, error) {
			arn, err := svc.DeleteSnapshotSchedule(ctx, in.VolumeARN)
			return volumeARNOutput{arn}, err
		}),
		"UpdateChapCredentials": op(func(ctx context.Context, in chapCredentials) (any, error) {
			t, i, err := svc.UpdateChapCredentials(ctx, control.ChapCredential(in))
			return targetInitiatorOutput{t, i}, err
		}),
		"DeleteChapCredentials": op(func(ctx context.Context, in targetARNInput) (any, error) {
			t, i, err := svc.DeleteChapCredentials(ctx, in.TargetARN, in.InitiatorName)
			return targetInitiatorOutput{t, i}, err
		}),
		"DescribeChapCredentials": op(func(ctx context.Context, in targetARNInput) (any, error) {
			creds, err := svc.DescribeChapCredentials(ctx, in.TargetARN)
			if err != nil {
				return nil, err
			}
			out := describeChapCredentialsOutput{ChapCredentials: []chapCredentials{}}
			for _, c := range creds {
				out.ChapCredentials = append(out.ChapCredentials, chapCredentials(c))
			}
			return out, nil
		}),
		"UpdateGatewaySoftwareNow":        updateGatewaySoftwareNow(svc),        // software.go
		"DescribeAvailabilityMonitorTest": describeAvailabilityMonitorTest(svc), // software.go
	}
}
