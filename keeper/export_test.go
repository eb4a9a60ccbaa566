package keeper

// Held is the number of mounts held, for tests.
func (k *Keeper) Held() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.mounts)
}

// linked is a Link whose connection is c, without Run: the test drives it.
func linked(c *Client) *Link {
	l := NewLink("", "", nil)
	l.c, l.serial = c, 1
	return l
}
