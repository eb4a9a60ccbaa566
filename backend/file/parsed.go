package file

import (
	"sync"

	"github.com/secretfs/secretfs/secret"
)

// parsedFiles remembers each manifest's parse by its stamp, so a scan
// re-reads only the files that changed: a folder of hundreds of manifests
// then costs a stat per file, not a parse (500 publishes of distinct
// Secrets at once each scan the folder).
type parsedFiles struct {
	mu    sync.Mutex
	files map[string]parsedFile
}

type parsedFile struct {
	stamp  stamp
	parsed []secret.Parsed
}

// stamp identifies one content of a file: any write changes ctime, an
// atomic replace changes the inode. Times are in nanoseconds.
type stamp struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

func (p *parsedFiles) get(path string, st stamp) ([]secret.Parsed, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, ok := p.files[path]
	if !ok || f.stamp != st {
		return nil, false
	}
	return f.parsed, true
}

func (p *parsedFiles) put(path string, st stamp, parsed []secret.Parsed) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.files == nil {
		p.files = map[string]parsedFile{}
	}
	p.files[path] = parsedFile{stamp: st, parsed: parsed}
}

// keep forgets every file not in seen (removed from the folder).
func (p *parsedFiles) keep(seen map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for path := range p.files {
		if !seen[path] {
			delete(p.files, path)
		}
	}
}
