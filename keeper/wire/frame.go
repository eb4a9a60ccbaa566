package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// HeaderSize is the length of a frame header.
const HeaderSize = 5

// Body limits (see the package doc).
const (
	MaxControl = 64 << 10
	MaxRecord  = 16 << 20
)

// Limit is the largest body a message of type op may have.
func Limit(op Op) int {
	switch op {
	case OpRegister, OpPut, OpEntry, OpVersion:
		return MaxRecord
	}
	return MaxControl
}

// ErrTooLarge is returned for a frame over its limit, before its body is read.
var ErrTooLarge = errors.New("message over its size limit")

// Write sends m as one frame with fd (-1 for none). The body is wiped
// after sending: it may hold secret bytes.
func Write(c *net.UnixConn, m *Message, fd int) error {
	buf := make([]byte, HeaderSize, HeaderSize+m.room())
	buf = m.Encode(buf)
	defer clear(buf)
	size := len(buf) - HeaderSize
	if size > Limit(m.Op) {
		return fmt.Errorf("message type %d: %w (%d bytes, limit %d)", m.Op, ErrTooLarge, size, Limit(m.Op))
	}
	binary.BigEndian.PutUint32(buf, uint32(size))
	buf[4] = byte(m.Op)
	var oob []byte
	if fd >= 0 {
		oob = syscall.UnixRights(fd)
	}
	if _, _, err := c.WriteMsgUnix(buf[:HeaderSize], oob, nil); err != nil {
		return err
	}
	_, err := c.Write(buf[HeaderSize:])
	return err
}

// ReadUnix reads one frame from c and the descriptor that came with it
// (-1 if none). Once the first bytes are in, the rest must arrive within
// rest (0: no limit), so a stalled peer cannot hold a half-read frame.
func ReadUnix(c *net.UnixConn, rest time.Duration) (*Message, int, error) {
	var hdr [HeaderSize]byte
	oob := make([]byte, syscall.CmsgSpace(4))
	n, oobn, flags, _, err := c.ReadMsgUnix(hdr[:], oob)
	if err != nil {
		return nil, -1, err
	}
	if n == 0 {
		return nil, -1, io.EOF
	}
	fd := -1
	if oobn > 0 {
		if fd, err = parseFD(oob[:oobn]); err != nil {
			return nil, -1, err
		}
	}
	if flags&syscall.MSG_CTRUNC != 0 {
		closeFD(fd)
		return nil, -1, errors.New("more descriptors than one in a frame")
	}
	if rest > 0 {
		c.SetReadDeadline(time.Now().Add(rest))
	}
	m, err := readRest(c, hdr[:], n)
	if err != nil {
		closeFD(fd)
		return nil, -1, err
	}
	return m, fd, nil
}

// Read reads one frame from r (a frame without descriptor).
func Read(r io.Reader) (*Message, error) {
	return readRest(r, make([]byte, HeaderSize), 0)
}

// readRest completes a header of which have bytes are in, checks the
// limit, then reads and decodes the body. The body buffer grows as bytes
// arrive, so a header that lies about its size costs nothing.
func readRest(r io.Reader, hdr []byte, have int) (*Message, error) {
	if _, err := io.ReadFull(r, hdr[have:]); err != nil {
		return nil, fmt.Errorf("frame header: %w", eof(err))
	}
	size := int64(binary.BigEndian.Uint32(hdr))
	op := Op(hdr[4])
	if size > int64(Limit(op)) {
		return nil, fmt.Errorf("message type %d: %w (%d bytes, limit %d)", op, ErrTooLarge, size, Limit(op))
	}
	body, err := readBody(r, int(size))
	defer clear(body)
	if err != nil {
		return nil, fmt.Errorf("message type %d: body: %w", op, eof(err))
	}
	return Decode(op, body)
}

// readBody reads size bytes, growing its buffer as they come and wiping
// each buffer it outgrows.
func readBody(r io.Reader, size int) ([]byte, error) {
	buf := make([]byte, 0, min(size, 64<<10))
	for len(buf) < size {
		if len(buf) == cap(buf) {
			next := make([]byte, len(buf), min(size, 2*cap(buf)))
			copy(next, buf)
			clear(buf)
			buf = next
		}
		n, err := r.Read(buf[len(buf):min(size, cap(buf))])
		buf = buf[:len(buf)+n]
		if err != nil && len(buf) < size {
			return buf, err
		}
	}
	return buf, nil
}

func eof(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func parseFD(oob []byte) (int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return -1, fmt.Errorf("control message: %w", err)
	}
	fd := -1
	for _, m := range msgs {
		fds, err := syscall.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, f := range fds {
			syscall.CloseOnExec(f)
			if fd < 0 {
				fd = f
			} else {
				syscall.Close(f) // one descriptor per frame
			}
		}
	}
	if fd < 0 {
		return -1, errors.New("control message without a descriptor")
	}
	return fd, nil
}

func closeFD(fd int) {
	if fd >= 0 {
		syscall.Close(fd)
	}
}
