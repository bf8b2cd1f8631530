package catalog

import (
	"slices"
	"strings"
	"time"
)

// ActivationKey is a key the appliance handed out on its activation GET and
// that ActivateGateway has not consumed yet.
type ActivationKey struct {
	V           int
	Key         string
	Region      string
	GatewayType string
	IssuedAt    time.Time
}

func (r *ActivationKey) check() error {
	if err := checkVersion(r.V); err != nil {
		return err
	}
	if r.Key == "" || r.Region == "" || r.IssuedAt.IsZero() {
		return invalid("activation key needs key, region and issue time")
	}
	return nil
}

// Gateway states as DescribeGatewayInformation reports them.
const (
	GatewayRunning  = "STATE_RUNNING"
	GatewayShutdown = "STATE_SHUTDOWN"
)

// Gateway is one activated gateway.
type Gateway struct {
	V                     int
	ID                    string // sgw-XXXXXXXX
	ARN                   string
	Name                  string
	Timezone              string
	Region                string
	Type                  string // CACHED
	State                 string // GatewayRunning or GatewayShutdown
	CreatedAt             time.Time
	CloudWatchLogGroupARN string `json:",omitempty"`
}

func (r *Gateway) check() error {
	if err := checkVersion(r.V); err != nil {
		return err
	}
	if !strings.HasPrefix(r.ID, "sgw-") || !strings.HasSuffix(r.ARN, "/"+r.ID) {
		return invalid("gateway id %q / arn %q", r.ID, r.ARN)
	}
	if r.State != GatewayRunning && r.State != GatewayShutdown {
		return invalid("gateway %s state %q", r.ID, r.State)
	}
	return nil
}

// Disk allocation types as ListLocalDisks reports them (the model's
// DiskAllocationType values).
const (
	DiskAvailable    = "AVAILABLE"
	DiskCache        = "CACHE_STORAGE"
	DiskUploadBuffer = "UPLOAD_BUFFER"
)

// Disk is one local disk of the appliance (a sparse file).
type Disk struct {
	V          int
	ID         string
	Path       string
	Node       string
	SizeBytes  int64
	Allocation string // DiskAvailable, DiskCache or DiskUploadBuffer
}

func (r *Disk) check() error {
	if err := checkVersion(r.V); err != nil {
		return err
	}
	if r.ID == "" || r.Path == "" || r.SizeBytes <= 0 {
		return invalid("disk %q path %q size %d", r.ID, r.Path, r.SizeBytes)
	}
	switch r.Allocation {
	case DiskAvailable, DiskCache, DiskUploadBuffer:
		return nil
	}
	return invalid("disk %s allocation %q", r.ID, r.Allocation)
}

// Volume is one cached iSCSI volume and its target. Each volume has its own
// target and is LUN LUN of it.
type Volume struct {
	V                  int
	ID                 string // vol-XXXXXXXXXXXXXXXXX
	ARN                string
	GatewayID          string
	SizeBytes          int64
	TargetName         string
	TargetARN          string
	NetworkInterfaceID string
	LUN                int
	CreatedAt          time.Time
	SourceSnapshotID   string `json:",omitempty"`
	SourceVolumeARN    string `json:",omitempty"`
	// KMSKey names the key the volume's objects are sealed with (a KMS
	// key ARN or alias as the client gave it, or the key of the snapshot
	// or volume it was created from); KMSEncrypted is set exactly when
	// there is one.
	KMSEncrypted bool   `json:",omitempty"`
	KMSKey       string `json:",omitempty"`
	// Attachment is "" for a volume attached to this gateway, else one
	// of the Volume* attachment states below (control/attach.go).
	Attachment string `json:",omitempty"`
}

// Volume attachment states other than attached (VolumeAttachmentStatus).
const (
	VolumeAttaching = "ATTACHING"
	VolumeDetaching = "DETACHING"
	VolumeDetached  = "DETACHED"
)

func (r *Volume) check() error {
	if err := checkVersion(r.V); err != nil {
		return err
	}
	if !strings.HasPrefix(r.ID, "vol-") || !strings.HasSuffix(r.ARN, "/volume/"+r.ID) {
		return invalid("volume id %q / arn %q", r.ID, r.ARN)
	}
	if r.GatewayID == "" || r.SizeBytes <= 0 || r.TargetName == "" || r.TargetARN == "" || r.LUN < 0 {
		return invalid("volume %s: gateway %q size %d target %q lun %d", r.ID, r.GatewayID, r.SizeBytes, r.TargetName, r.LUN)
	}
	if r.KMSEncrypted != (r.KMSKey != "") {
		return invalid("volume %s: KMSEncrypted %t with KMSKey %q", r.ID, r.KMSEncrypted, r.KMSKey)
	}
	return nil
}

// ChapCredential is the CHAP secret pair of one initiator on one target.
type ChapCredential struct {
	V                             int
	TargetARN                     string
	InitiatorName                 string
	SecretToAuthenticateInitiator string
	SecretToAuthenticateTarget    string `json:",omitempty"`
}

func (r *ChapCredential) check() error {
	if err := checkVersion(r.V); err != nil {
		return err
	}
	if r.TargetARN == "" || r.InitiatorName == "" || r.SecretToAuthenticateInitiator == "" {
		return invalid("chap credential needs target, initiator and initiator secret")
	}
	return nil
}

// Tag is a key/value pair on a gateway or volume.
type Tag struct{ Key, Value string }

// ResourceTags are the tags of one gateway or volume, in the order they were
// first added.
type ResourceTags struct {
	V           int
	ResourceARN string
	Tags        []Tag
}

func (r *ResourceTags) check() error {
	if err := checkVersion(r.V); err != nil {
		return err
	}
	if r.ResourceARN == "" {
		return invalid("tags without a resource")
	}
	return nil
}

// Schedule is a volume's snapshot schedule.
type Schedule struct {
	V                 int
	VolumeARN         string
	StartAt           int // hour of the day, 0..23, in the gateway's time zone
	RecurrenceInHours int
	Description       string `json:",omitempty"`
	Tags              []Tag  `json:",omitempty"`
	// Since is when the schedule was set: no slot before it is due.
	Since time.Time `json:",omitempty"`
	// LastTaken is the slot of the last scheduled snapshot taken.
	LastTaken time.Time `json:",omitempty"`
}

func (r *Schedule) check() error {
	if err := checkVersion(r.V); err != nil {
		return err
	}
	if r.VolumeARN == "" || r.StartAt < 0 || r.StartAt > 23 || r.RecurrenceInHours <= 0 {
		return invalid("schedule %q start %d every %d h", r.VolumeARN, r.StartAt, r.RecurrenceInHours)
	}
	return nil
}

// ClientToken remembers what an idempotent request did, so that a retry with
// the same token gets the same answer instead of a second resource.
type ClientToken struct {
	V     int
	Scope string // operation and gateway: a token is unique within its scope
	Token string
	// RequestDigest identifies the request's parameters, to tell a retry
	// from a different request reusing a token.
	RequestDigest string
	ResultARN     string
	CreatedAt     time.Time
}

func (r *ClientToken) check() error {
	if err := checkVersion(r.V); err != nil {
		return err
	}
	if r.Scope == "" || r.Token == "" || r.ResultARN == "" {
		return invalid("client token needs scope, token and result")
	}
	return nil
}

// sep separates the parts of a composite key; it cannot occur in an ARN,
// an IQN or a token.
const sep = "\x00"

// ActivationKey returns an unconsumed activation key.
func (tx *Tx) ActivationKey(key string) (ActivationKey, error) {
	return get[ActivationKey](tx, bucketActivationKeys, key)
}

// PutActivationKey stores a key handed out by the appliance.
func (tx *Tx) PutActivationKey(k ActivationKey) error {
	k.V = currentVersion
	return put(tx, bucketActivationKeys, k.Key, &k)
}

// DeleteActivationKey consumes a key.
func (tx *Tx) DeleteActivationKey(key string) error { return del(tx, bucketActivationKeys, key) }

// Gateway returns one gateway by ID.
func (tx *Tx) Gateway(id string) (Gateway, error) { return get[Gateway](tx, bucketGateways, id) }

// Gateways returns every gateway, ordered by ID.
func (tx *Tx) Gateways() ([]Gateway, error) { return list[Gateway](tx, bucketGateways, "") }

// PutGateway creates or replaces a gateway.
func (tx *Tx) PutGateway(g Gateway) error {
	g.V = currentVersion
	return put(tx, bucketGateways, g.ID, &g)
}

// DeleteGateway removes a gateway record only; its volumes are the caller's.
func (tx *Tx) DeleteGateway(id string) error { return del(tx, bucketGateways, id) }

// Disk returns one local disk by ID.
func (tx *Tx) Disk(id string) (Disk, error) { return get[Disk](tx, bucketDisks, id) }

// Disks returns every local disk, ordered by ID.
func (tx *Tx) Disks() ([]Disk, error) { return list[Disk](tx, bucketDisks, "") }

// PutDisk creates or replaces a disk.
func (tx *Tx) PutDisk(d Disk) error {
	d.V = currentVersion
	return put(tx, bucketDisks, d.ID, &d)
}

// Volume returns one volume by ID.
func (tx *Tx) Volume(id string) (Volume, error) { return get[Volume](tx, bucketVolumes, id) }

// Volumes returns every volume, ordered by ID.
func (tx *Tx) Volumes() ([]Volume, error) {
	if tx.db == nil || tx.tx.Writable() {
		return list[Volume](tx, bucketVolumes, "")
	}
	// A read-only transaction of ID n sees what write n committed, and
	// nothing else: the records decoded by another of the same ID are these
	// (DB.volumes). A Volume holds no references, so a copy of the slice
	// is the caller's own.
	id := tx.tx.ID()
	if c := tx.db.volumes.Load(); c != nil && c.txid == id {
		return slices.Clone(c.vols), nil
	}
	vols, err := list[Volume](tx, bucketVolumes, "")
	if err != nil {
		return nil, err
	}
	tx.db.volumes.Store(&volumeList{txid: id, vols: slices.Clone(vols)})
	return vols, nil
}

// PutVolume creates or replaces a volume.
func (tx *Tx) PutVolume(v Volume) error {
	v.V = currentVersion
	return put(tx, bucketVolumes, v.ID, &v)
}

// DeleteVolume removes a volume record only.
func (tx *Tx) DeleteVolume(id string) error { return del(tx, bucketVolumes, id) }

// ChapCredentials returns the credentials of one target, ordered by
// initiator name.
func (tx *Tx) ChapCredentials(targetARN string) ([]ChapCredential, error) {
	return list[ChapCredential](tx, bucketChap, targetARN+sep)
}

// PutChapCredential creates or replaces the credential of one initiator.
func (tx *Tx) PutChapCredential(c ChapCredential) error {
	c.V = currentVersion
	return put(tx, bucketChap, c.TargetARN+sep+c.InitiatorName, &c)
}

// DeleteChapCredential removes one initiator's credential; it reports
// ErrNotFound if there was none.
func (tx *Tx) DeleteChapCredential(targetARN, initiator string) error {
	key := targetARN + sep + initiator
	if tx.tx.Bucket(bucketChap).Get([]byte(key)) == nil {
		return ErrNotFound
	}
	return del(tx, bucketChap, key)
}

// Tags returns a resource's tags (none if it has none).
func (tx *Tx) Tags(resourceARN string) ([]Tag, error) {
	rt, err := get[ResourceTags](tx, bucketTags, resourceARN)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return rt.Tags, nil
}

// PutTags replaces a resource's tags; no tags deletes the record.
func (tx *Tx) PutTags(resourceARN string, tags []Tag) error {
	if len(tags) == 0 {
		return del(tx, bucketTags, resourceARN)
	}
	return put(tx, bucketTags, resourceARN, &ResourceTags{V: currentVersion, ResourceARN: resourceARN, Tags: tags})
}

// Schedule returns a volume's snapshot schedule.
func (tx *Tx) Schedule(volumeARN string) (Schedule, error) {
	return get[Schedule](tx, bucketSchedules, volumeARN)
}

// Schedules returns every snapshot schedule, ordered by volume ARN (for the
// scheduler).
func (tx *Tx) Schedules() ([]Schedule, error) { return list[Schedule](tx, bucketSchedules, "") }

// PutSchedule creates or replaces a volume's schedule.
func (tx *Tx) PutSchedule(s Schedule) error {
	s.V = currentVersion
	return put(tx, bucketSchedules, s.VolumeARN, &s)
}

// DeleteSchedule removes a volume's schedule; it reports ErrNotFound if
// there was none.
func (tx *Tx) DeleteSchedule(volumeARN string) error {
	if tx.tx.Bucket(bucketSchedules).Get([]byte(volumeARN)) == nil {
		return ErrNotFound
	}
	return del(tx, bucketSchedules, volumeARN)
}

// ClientToken returns what a request with this token did in this scope.
func (tx *Tx) ClientToken(scope, token string) (ClientToken, error) {
	return get[ClientToken](tx, bucketClientTokens, scope+sep+token)
}

// PutClientToken records a request's result under its token.
func (tx *Tx) PutClientToken(t ClientToken) error {
	t.V = currentVersion
	return put(tx, bucketClientTokens, t.Scope+sep+t.Token, &t)
}

// DeleteClientTokensFor forgets every token whose result is resultARN, so
// that a token of a deleted resource can create a new one.
func (tx *Tx) DeleteClientTokensFor(resultARN string) error {
	all, err := list[ClientToken](tx, bucketClientTokens, "")
	if err != nil {
		return err
	}
	for _, t := range all {
		if t.ResultARN == resultARN {
			if err := del(tx, bucketClientTokens, t.Scope+sep+t.Token); err != nil {
				return err
			}
		}
	}
	return nil
}

func isNotFound(err error) bool { return errorsIs(err, ErrNotFound) }
