package keeper

// Held is the number of mounts held, for tests.
func (k *Keeper) Held() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.mounts)
}
