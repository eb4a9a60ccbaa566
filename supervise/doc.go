// Package supervise runs one command as its parent for as long as it
// lives: the part of `secretfs exec` that makes it a proper PID 1 and
// lets it restart or signal the command when its Secret changes.
//
// The life of a command under a Supervisor:
//  1. Start runs it (the environment is the caller's) and, where the
//     system has them, makes this process a reaper (PID 1 already is one;
//     otherwise PR_SET_CHILD_SUBREAPER on Linux: reaper_linux.go) and
//     starts forwarding the signals this process receives (TERM, INT,
//     HUP, QUIT, USR1, USR2, WINCH) to the command (forward), except
//     those its terminal sent the command itself (sentByTerminal);
//  2. zombies are reaped: the command's by its pid, and on Linux the
//     orphans that were re-parented to us once they stayed a zombie for
//     orphanGrace, so that a child this process started itself
//     (os/exec, e.g. a kubeconfig credential plugin) is still reaped by
//     its own Wait (reaper_linux.go);
//  3. Signal sends the command a signal; Restart stops it as kubelet stops
//     a container (child.stop: SIGTERM to the command, SIGKILL once the
//     grace period is over, and once it has gone SIGKILL to what it left
//     in its process group, which it leads off a terminal) and runs it
//     again with a new environment. On Windows, which has no signals to send, Restart
//     terminates the command's whole process tree (a job object) and
//     Signal accepts only os.Kill;
//  4. once the command exits by itself, or after a forwarded TERM, INT
//     or QUIT, it is never started again: Done is closed and Code is its
//     exit status (128+N for signal N, as a shell reports it).
package supervise
