// Package restart proves that volumes survive their plugin: `secretfs
// csi --keeper` serves kubelet-shaped volumes while readers loop over every
// file and the Secrets keep changing; the plugin is SIGKILLed at random
// moments (and upgraded once, with SIGTERM and a new binary), and the next
// process takes every mount back. No read may fail or mix two versions.
//
//	go test ./sanity/restart/            50 volumes, 20 kills, 1 upgrade
//	go test -short ./sanity/restart/     10 volumes, 3 kills (CI's quick run)
//
// The world it builds (harness.go) is shared with sanity/upgrade.
package restart
