package main

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// runChild runs cmd to its end, for systems where secretfs exec cannot
// replace itself with the command (Windows: exec_other.go). The console
// delivers Ctrl-C, Ctrl-Break and its closing to every process attached
// to it, the child among them, so this process only outlives them while
// the child decides what to do: it returns the child's exit status (128+N
// where the child was killed by signal N, as a shell reports it). An
// error means the child did not run.
func runChild(cmd *exec.Cmd) (int, error) {
	// Notify without reading: the signals are dropped, not fatal.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 0, err
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ee.ExitCode(), nil
}
