package projection

// Item maps one key of the Secret to a relative path, as secret.items[].
type Item struct {
	Key  string
	Path string
	Mode *int32 // nil: DefaultMode
}

// Spec describes a mount exactly like a Kubernetes secret volume source.
type Spec struct {
	Namespace   string
	SecretName  string
	Items       []Item
	DefaultMode *int32 // nil: 0644
	Optional    bool
	FSGroup     *int64 // nil: no fsGroup
}

// File is one projected file: its permission bits (fsGroup applied) and
// its bytes. Data is shared with the Secret; nobody writes to it.
type File struct {
	Mode uint32
	Data []byte
}

// Payload is what one version of the volume shows: slash-separated relative
// paths to files. Folders are implied by the paths.
type Payload struct {
	Files map[string]File
	// Sources, for a volume of several sources (Merge), says which
	// source (by index) gave each file, so that a new server can tell
	// the parts of a taken-over version apart. Nil otherwise.
	Sources map[string]int
}
