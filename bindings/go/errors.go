package losskit

// #include "losskit.h"
import "C"

import "fmt"

// Status is losskit's status code (lk_status). New codes may appear in later versions;
// String gives the library's text for any value.
type Status int32

// The status codes of losskit.h.
const (
	OK                    Status = C.LK_OK
	ErrNullArg            Status = C.LK_ERR_NULL_ARG
	ErrInvalidArg         Status = C.LK_ERR_INVALID_ARG
	ErrShapeMismatch      Status = C.LK_ERR_SHAPE_MISMATCH
	ErrDType              Status = C.LK_ERR_DTYPE
	ErrInvalidParam       Status = C.LK_ERR_INVALID_PARAM
	ErrUnknownParam       Status = C.LK_ERR_UNKNOWN_PARAM
	ErrUnknownLoss        Status = C.LK_ERR_UNKNOWN_LOSS
	ErrInvalidTarget      Status = C.LK_ERR_INVALID_TARGET
	ErrUnsupported        Status = C.LK_ERR_UNSUPPORTED
	ErrBufferTooSmall     Status = C.LK_ERR_BUFFER_TOO_SMALL
	ErrInvalidInput       Status = C.LK_ERR_INVALID_INPUT
	ErrBackendUnavailable Status = C.LK_ERR_BACKEND_UNAVAILABLE
	ErrGPU                Status = C.LK_ERR_GPU
	ErrOutOfMemory        Status = C.LK_ERR_OUT_OF_MEMORY
	ErrPluginLoad         Status = C.LK_ERR_PLUGIN_LOAD
	ErrPluginSymbol       Status = C.LK_ERR_PLUGIN_SYMBOL
	ErrPluginABI          Status = C.LK_ERR_PLUGIN_ABI
	ErrPluginDuplicateID  Status = C.LK_ERR_PLUGIN_DUPLICATE_ID
	ErrPluginInvalidSpec  Status = C.LK_ERR_PLUGIN_INVALID_SPEC
	ErrPluginFailed       Status = C.LK_ERR_PLUGIN_FAILED
	ErrPanic              Status = C.LK_ERR_PANIC
	ErrInternal           Status = C.LK_ERR_INTERNAL
)

// String is the library's static text for the code ("unknown status" for unknown codes).
func (s Status) String() string { return C.GoString(C.lk_status_str(C.int32_t(s))) }

// Error is a failed losskit call: the status code and the message losskit gave, read in
// the same native call as the failure.
type Error struct {
	Code Status
	Msg  string
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("losskit: %s (%d)", e.Code, int32(e.Code))
	}
	return fmt.Sprintf("losskit: %s (%d): %s", e.Code, int32(e.Code), e.Msg)
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, &losskit.Error{Code: losskit.ErrInvalidParam}) matches any message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Msg == "" || t.Msg == e.Msg)
}

// errorf builds an Error for a check this package makes before calling losskit.
func errorf(code Status, format string, args ...any) error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}
