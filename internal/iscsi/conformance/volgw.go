package conformance

// VolgwOptions configure StartVolgw.
type VolgwOptions struct {
	// Size of the file behind the LUN; 64 MiB when 0.
	Size int64
	// BackingFile, when set, is used as is; otherwise a sparse file is
	// created in a temporary directory.
	BackingFile string
	IQN         string
	CHAP        *CHAP
}
