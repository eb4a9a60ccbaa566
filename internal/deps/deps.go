// Package deps pins the modules secretfs builds on while packages are being
// written in parallel, so nobody has to edit go.mod concurrently.
// Removed once every import below is used by a real package.
package deps

import (
	_ "github.com/container-storage-interface/spec/lib/go/csi"
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/hanwen/go-fuse/v2/fuse"
	_ "github.com/hashicorp/golang-lru/v2"
	_ "github.com/kubernetes-csi/csi-lib-utils/protosanitizer"
	_ "github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "golang.org/x/sys/unix"
	_ "google.golang.org/grpc"
	_ "k8s.io/api/core/v1"
	_ "k8s.io/apimachinery/pkg/apis/meta/v1"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/client-go/tools/cache"
	_ "k8s.io/client-go/tools/clientcmd"
	_ "k8s.io/client-go/tools/watch"
	_ "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
	_ "k8s.io/mount-utils"
	_ "sigs.k8s.io/yaml"
	_ "golang.org/x/sync/singleflight"
)
