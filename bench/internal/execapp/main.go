package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

func monotonic() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func main() {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM)
	fmt.Printf("start %s %d\n", os.Getenv("value"), monotonic())
	for s := range sigs {
		if s == syscall.SIGTERM {
			os.Exit(0)
		}
		fmt.Printf("hup %d\n", monotonic())
	}
}
