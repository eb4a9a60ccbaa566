package manifest

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"
)

// bomb is n bytes of one of the densest node streams: each pair of bytes
// (or three) is a node.
func bomb(kind string, n int) []byte {
	var b bytes.Buffer
	p := map[string][3]string{
		"json flow list":     {`{"kind":"ConfigMap","x":[`, "1,", "1]}"},
		"yaml flow list":     {"kind: ConfigMap\nx: [", "1,", "1]\n"},
		"yaml block list":    {"kind: ConfigMap\nx:\n", "- 1\n", ""},
		"yaml flow pairs":    {"x: [", "a: ,", "a: ]\n"},
		"yaml empty values":  {"", "a:\n", ""},
		"yaml flow mappings": {"x: [", "{},", "{}]\n"},
	}[kind]
	b.WriteString(p[0])
	for b.Len() < n-len(p[2]) {
		b.WriteString(p[1])
	}
	b.WriteString(p[2])
	return b.Bytes()
}

// A stream of 16 MiB (the most a file may hold) made of the smallest
// nodes is refused by its node count, within a bounded memory: the
// parsed nodes would cost a GiB and more.
func TestNodeBombBoundedMemory(t *testing.T) {
	for _, kind := range []string{"json flow list", "yaml flow list", "yaml block list", "yaml flow pairs", "yaml empty values", "yaml flow mappings"} {
		t.Run(kind, func(t *testing.T) {
			data := bomb(kind, 16<<20)
			runtime.GC()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			docs, err := Documents(data)
			runtime.ReadMemStats(&m1)
			runtime.KeepAlive(docs)
			alloc := (m1.TotalAlloc - m0.TotalAlloc) >> 20
			t.Logf("%d MiB in: allocated %d MiB", len(data)>>20, alloc)
			if !errors.Is(err, errTooManyNodes) {
				t.Errorf("got %v, want %v", err, errTooManyNodes)
			}
			// TotalAlloc bounds the heap the call could have held.
			if alloc > 100 {
				t.Errorf("parsing allocated %d MiB, want under 100 MiB", alloc)
			}
		})
	}
}

// Just under the budget parses, and the memory it takes is what the
// 16 MiB cap of a file promises: a few times the text, not a GiB.
func TestNodeBudgetParses(t *testing.T) {
	for _, kind := range []string{"json flow list", "yaml flow list"} {
		t.Run(kind, func(t *testing.T) {
			data := bomb(kind, 2*(maxParseNodes/2-100))
			runtime.GC()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			docs, err := Documents(data)
			runtime.ReadMemStats(&m1)
			if err != nil {
				t.Fatalf("%d bytes: %v", len(data), err)
			}
			runtime.KeepAlive(docs)
			heap := (int64(m1.HeapAlloc) - int64(m0.HeapAlloc)) >> 20
			t.Logf("%d KiB in: %d nodes, heap grew %d MiB, allocated %d MiB", len(data)>>10, len(docs[0].Content[len(docs[0].Content)-1].Content), heap, (m1.TotalAlloc-m0.TotalAlloc)>>20)
			if heap > 150 {
				t.Errorf("heap grew %d MiB, want under 150", heap)
			}
		})
	}
}

// Real text with many colons and dashes outside structure (PEM blocks,
// URLs) stays far under the budget.
func TestNodeBoundOfRealText(t *testing.T) {
	pem := "-----BEGIN CERTIFICATE-----\n" + strings.Repeat(strings.Repeat("A", 64)+"\n", 20) + "-----END CERTIFICATE-----\n"
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Secret\nmetadata: {name: ca}\nstringData:\n  ca.crt: |\n")
	for b.Len() < 15<<20 {
		b.WriteString("    " + strings.ReplaceAll(pem, "\n", "\n    "))
	}
	if n := yamlNodeBound([]byte(b.String())); n > maxParseNodes {
		t.Errorf("a 15 MiB CA bundle bounds %d nodes, over the budget %d", n, maxParseNodes)
	}
	if _, err := Documents([]byte(b.String())); err != nil {
		t.Errorf("a 15 MiB CA bundle: %v", err)
	}
}
