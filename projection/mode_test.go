package projection

import (
	"strings"
	"testing"
)

func TestParseMode(t *testing.T) {
	good := map[string]int32{
		"0400": 0o400, "400": 0o400, "0o400": 0o400, "0O400": 0o400,
		"0": 0, "000": 0, "0777": 0o777, "777": 0o777, "644": 0o644, " 0440 ": 0o440, "7": 7,
	}
	for in, want := range good {
		got, err := ParseMode(in)
		if err != nil || got != want {
			t.Errorf("ParseMode(%q) = %#o, %v; want %#o", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0o", "1000", "0o1000", "8", "0489", "-1", "+400", "0x1ff", "abc", "4 00", "400.0", "99999999999999999999"} {
		_, err := ParseMode(in)
		if err == nil || !strings.Contains(err.Error(), `"`+in+`"`) {
			t.Errorf("ParseMode(%q): got %v, want an error naming the text", in, err)
		}
	}
}

func TestFormatMode(t *testing.T) {
	if got := FormatMode(0o400); got != "0400" {
		t.Errorf("got %q", got)
	}
}
