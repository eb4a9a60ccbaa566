package fusefs

import (
	"bytes"
	"slices"

	"github.com/secretfs/secretfs/projection"
	"github.com/secretfs/secretfs/secmem"
)

// shareFiles puts the bytes of p's files (in the order of paths) into one
// block of secret memory and returns each file's slice of it.
//
// Versions share blocks by content: the block holds the distinct file
// contents in byte order, which depends neither on paths, modes nor
// fsGroup. So every volume showing the same keys of the same Secret
// version (whatever its items' paths and modes), a second file with the
// same value, and a version rebuilt from a keeper's snapshot all use the
// one copy already in memory. The block is released by version.wipe.
func shareFiles(p *projection.Payload, paths []string) (*secmem.Block, [][]byte, error) {
	order := make([]int, len(paths)) // indices of paths, by content
	for i := range order {
		order[i] = i
	}
	content := func(i int) []byte { return p.Files[paths[i]].Data }
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(content(a), content(b)) })
	var parts [][]byte
	offset := make([]int, len(paths)) // each file's start in the block
	end := 0
	for k, i := range order {
		if k == 0 || !bytes.Equal(content(i), content(order[k-1])) {
			parts = append(parts, content(i))
			offset[i] = end
			end += len(content(i))
		} else {
			offset[i] = offset[order[k-1]]
		}
	}
	mem, err := secmem.Share(parts)
	if err != nil {
		return nil, nil, err
	}
	all := mem.Bytes()
	data := make([][]byte, len(paths))
	for i := range paths {
		n := len(content(i))
		data[i] = all[offset[i] : offset[i]+n : offset[i]+n]
	}
	return mem, data, nil
}
