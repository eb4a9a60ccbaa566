// Package providertest is a scripted Secrets Store CSI provider for tests
// and benchmarks: a real gRPC server of the v1alpha1 API on a unix socket,
// whose replies the test sets and whose requests it records.
package providertest
