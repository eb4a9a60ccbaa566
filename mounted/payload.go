package mounted

import (
	"bytes"

	"github.com/secretfs/secretfs/projection"
)

// MountPayload mounts files that their owner supplies ready-made and
// replaces with SetPayload: a Secrets Store provider's reply, already
// checked with projection.ValidateLayout. No Secret is projected or followed.
func MountPayload(dir string, cfg Config, p *projection.Payload) (*Volume, error) {
	v := newVolume(dir, cfg)
	if err := v.mount(p); err != nil {
		return nil, err
	}
	v.keepNew()
	return v, nil
}

// SetPayload switches a MountPayload volume to p, through the same atomic
// switch as a Secret's change; a payload equal to the one shown causes no
// switch.
func (v *Volume) SetPayload(p *projection.Payload) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.fs.Shows(p) {
		return nil
	}
	if err := v.fs.Update(p); err != nil {
		return err
	}
	v.cfg.Logger.Info("volume updated", "mount", v.dir, "files", len(p.Files), "bytes", p.Size())
	return nil
}

// SetMeta replaces what the keeper holds about the volume (a republish's
// fresh request), registering again only when it changed.
func (v *Volume) SetMeta(meta []byte) {
	v.mu.Lock()
	same := bytes.Equal(meta, v.cfg.Meta)
	v.mu.Unlock()
	if !same {
		v.setMeta(meta)
	}
}
