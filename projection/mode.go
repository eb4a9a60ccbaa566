package projection

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxMode is the largest file mode a secret volume accepts (kubelet: 0777).
const MaxMode = 0o777

// ParseMode reads a file mode as text, always octal, as chmod does: "0400",
// "400" and "0o400" are the same. Decimal would make "400" mean 0620,
// a silent and dangerous surprise.
func ParseMode(s string) (int32, error) {
	t := strings.TrimSpace(s)
	if len(t) > 2 && t[0] == '0' && (t[1] == 'o' || t[1] == 'O') {
		t = t[2:]
	}
	n, err := strconv.ParseUint(t, 8, 32)
	if err != nil || t == "" || t[0] == '+' {
		return 0, fmt.Errorf("mode %q: not an octal number such as 0400", s)
	}
	if n > MaxMode {
		return 0, fmt.Errorf("mode %q: out of range 0-0777", s)
	}
	return int32(n), nil
}

// FormatMode writes a mode the way users write it ("0400").
func FormatMode(m int32) string { return fmt.Sprintf("%#o", m) }
