package supervise

// child is one run of the command.
type child struct {
	pid        int
	done       chan struct{} // closed once it has ended (and was reaped)
	code       int           // its exit status, once done is closed
	restarting bool          // Restart ended it (Supervisor.mu)
	sys        childSys      // what the system needs to end it
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// finish records the exit status and closes done.
func (c *child) finish(code int) {
	c.code = code
	close(c.done)
}
