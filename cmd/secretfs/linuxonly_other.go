//go:build !linux

package main

func init() {
	commands["mount"] = linuxOnly("mount", "show a Secret as files at a mount point")
	commands["csi"] = linuxOnly("csi", "serve the CSI driver (kubelet plugin)")
	commands["keeper"] = linuxOnly("keeper", "hold mounts alive across restarts of their server")
}
