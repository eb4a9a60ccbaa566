package wire

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// templates is every text this package's errors are built from: a value
// that is part of it cannot be told from the template.
const templates = `unknown message type lacks field not a secretfs keeper peer out of range
notice bad tag at offset has wire want frame header body message over its size limit bytes
head no current version file appears twice generation mode without a path unexpected EOF`

// values are the length-delimited values in b, nested ones included.
func values(b []byte, depth int) [][]byte {
	var out [][]byte
	for len(b) > 0 && depth < 8 {
		n, t, l := protowire.ConsumeTag(b)
		if l < 0 {
			return out
		}
		b = b[l:]
		if t == protowire.BytesType {
			if v, l := protowire.ConsumeBytes(b); l >= 0 {
				out = append(out, v)
				out = append(out, values(v, depth+1)...)
			}
		}
		l = protowire.ConsumeFieldValue(n, t, b)
		if l < 0 {
			return out
		}
		b = b[l:]
	}
	return out
}

// quotesNoInput fails if err holds a value carried by the input.
func quotesNoInput(t *testing.T, err error, body []byte) {
	if err == nil {
		return
	}
	msg := err.Error()
	for _, v := range append(values(body, 0), body) {
		s := string(v)
		if len(s) >= 4 && strings.Trim(s, "0123456789 ") != "" && strings.Contains(msg, s) && !strings.Contains(templates, s) {
			t.Fatalf("error quotes an input value: %s", msg)
		}
	}
	if strings.Contains(msg, "s3cr3t") {
		t.Fatalf("error quotes a secret: %s", msg)
	}
}

// FuzzRead decodes whole frames: it never panics, and its errors quote no
// input. Its corpus (testdata/fuzz/FuzzRead) runs with every go test.
func FuzzRead(f *testing.F) {
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := Read(bytes.NewReader(frame))
		body := frame[min(len(frame), HeaderSize):]
		quotesNoInput(t, err, body)
		if err != nil {
			return
		}
		// What decodes encodes back to what decodes the same.
		again, err := Decode(m.Op, m.Encode(nil))
		if err != nil {
			t.Fatalf("re-decoding an encoded message: %v", err)
		}
		if string(again.Encode(nil)) != string(m.Encode(nil)) {
			t.Fatal("encoding is not stable")
		}
	})
}

// FuzzBlobs decodes head and version blobs the same way.
func FuzzBlobs(f *testing.F) {
	f.Fuzz(func(t *testing.T, blob []byte) {
		_, err := DecodeHead(blob)
		quotesNoInput(t, err, blob)
		v, err := DecodeVersion(blob)
		quotesNoInput(t, err, blob)
		if err == nil {
			if _, err := DecodeVersion(EncodeVersion(&v)); err != nil {
				t.Fatalf("re-decoding an encoded version: %v", err)
			}
		}
	})
}
