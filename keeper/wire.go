// Package keeper keeps FUSE mounts alive across restarts of the process
// that serves them. The keeper is a tiny long-lived process holding, for
// each mount, a dup of its /dev/fuse descriptor and a snapshot of what it
// shows (fusefs.Snapshot); a restarted server takes both back and serves
// the same mount on. It holds no logic that would need frequent upgrades:
// it stores, lists and forgets, nothing more.
//
// The protocol is a stream of messages over a unix socket (mode 0600):
// a 4-byte length carried with an optional descriptor (SCM_RIGHTS), then a
// gob-encoded body.
package keeper

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/secretfs/secretfs/fusefs"
)

type op uint8

const (
	opRegister op = iota + 1 // ID, Meta, Snap + fd: hold this mount
	opPut                    // ID, Ver: a version about to become current
	opDrop                   // ID, Gen: a version released
	opForget                 // ID: the mount is gone or unmounted
	opList                   // → one opEntry per mount (+ fd), then opEnd
	opEntry
	opEnd
	opAck
	opNotify // ID, Notices: deliver to the kernel from here
)

type message struct {
	Op      op
	ID      string
	Meta    []byte
	Snap    *fusefs.Snapshot
	Ver     *fusefs.VersionState
	Gen     uint64
	Notices []fusefs.Notice
	Err     string
}

// maxMessage bounds a message: a snapshot holds a few versions of at most
// 1 MiB of data each.
const maxMessage = 64 << 20

func send(c *net.UnixConn, m *message, fd int) error {
	var body bytes.Buffer
	if err := gob.NewEncoder(&body).Encode(m); err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(body.Len()))
	var oob []byte
	if fd >= 0 {
		oob = syscall.UnixRights(fd)
	}
	if _, _, err := c.WriteMsgUnix(hdr[:], oob, nil); err != nil {
		return err
	}
	_, err := c.Write(body.Bytes())
	return err
}

// recv reads one message and the descriptor that came with it (-1 if none).
func recv(c *net.UnixConn) (*message, int, error) {
	var hdr [4]byte
	oob := make([]byte, syscall.CmsgSpace(4))
	n, oobn, _, _, err := c.ReadMsgUnix(hdr[:], oob)
	if err != nil {
		return nil, -1, err
	}
	fd := -1
	if oobn > 0 {
		if fd, err = parseFD(oob[:oobn]); err != nil {
			return nil, -1, err
		}
	}
	if n < 4 {
		if _, err := io.ReadFull(c, hdr[n:]); err != nil {
			closeFD(fd)
			return nil, -1, err
		}
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size > maxMessage {
		closeFD(fd)
		return nil, -1, fmt.Errorf("message of %d bytes is too large", size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(c, body); err != nil {
		closeFD(fd)
		return nil, -1, err
	}
	var m message
	if err := gob.NewDecoder(bytes.NewReader(body)).Decode(&m); err != nil {
		closeFD(fd)
		return nil, -1, fmt.Errorf("decode: %w", err)
	}
	clear(body) // it may hold secret bytes
	return &m, fd, nil
}

func parseFD(oob []byte) (int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return -1, err
	}
	for _, m := range msgs {
		fds, err := syscall.ParseUnixRights(&m)
		if err != nil {
			return -1, err
		}
		for i, fd := range fds {
			syscall.CloseOnExec(fd)
			if i > 0 {
				syscall.Close(fd) // one descriptor per message
			}
		}
		if len(fds) > 0 {
			return fds[0], nil
		}
	}
	return -1, errors.New("control message without a descriptor")
}

func closeFD(fd int) {
	if fd >= 0 {
		syscall.Close(fd)
	}
}
