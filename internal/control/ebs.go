package control

// NewSnapshotID issues a snapshot ID as CreateSnapshot does, for a
// snapshot made through the EBS direct APIs (StartSnapshot): one
// namespace, so an imported snapshot is listed, restored and deleted like
// any other.
func (s *Service) NewSnapshotID() (string, error) {
	return s.ids.snapshotID()
}
