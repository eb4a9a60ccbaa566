package provider

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is a failure of a provider volume with the gRPC code kubelet gets
// for it. Msg names the provider, class or path; it never holds a
// provider's own error text, which may quote attributes or tokens.
type Error struct {
	Code codes.Code
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// GRPCStatus lets status.FromError (and so the CSI layer) see the code.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Code, e.Msg) }

func errorf(code codes.Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}
