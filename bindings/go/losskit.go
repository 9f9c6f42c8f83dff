package losskit

// The cgo preamble: where the header and the library are found, and the static C shims.
//
// Every fallible call goes through a shim that calls the lk_ function and, on failure,
// copies lk_last_error_message() into malloc'd memory before returning. The message is
// thread-local in losskit and a goroutine may move to another OS thread between two cgo
// calls, so reading it in a second call could return another call's message.
//
// lkgo_compute takes the data pointers of one compute call as direct arguments (the cgo
// rules allow a Go pointer as an argument when the memory it points to holds no Go
// pointers) and builds the lk_tensor array on the C side, so no Go pointer is ever stored
// in C memory and no Go memory passed to C contains a Go pointer (checked by the tests
// with GODEBUG=cgocheck=2). Data is never copied.
//
// The library is looked up in ../../target/release, then ../../target/debug (cargo's
// output), and the same directories are recorded as the run-time search path (rpath), so
// neither LD_LIBRARY_PATH nor an install is needed in the repository. For an installed
// library, put its -L and -Wl,-rpath in CGO_LDFLAGS (they come first) and its include
// directory in CGO_CFLAGS; see bindings/README.md.

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../target/release -L${SRCDIR}/../../target/debug -llosskit
#cgo LDFLAGS: -Wl,-rpath,${SRCDIR}/../../target/release -Wl,-rpath,${SRCDIR}/../../target/debug
#include <stdlib.h>
#include <string.h>
#include "losskit.h"

static char *lkgo_error_copy(void) {
	const char *m = lk_last_error_message();
	if (m == NULL) return NULL;
	size_t n = strlen(m);
	char *c = (char *)malloc(n + 1);
	if (c != NULL) memcpy(c, m, n + 1);
	return c;
}

#define LKGO_CALL(call)                                  \
	do {                                                 \
		int32_t s_ = (call);                             \
		if (s_ != LK_OK) *msg = lkgo_error_copy();       \
		return s_;                                       \
	} while (0)

static int32_t lkgo_context_create(int32_t backend, lk_context **out, char **msg) {
	LKGO_CALL(lk_context_create(backend, out));
}
static int32_t lkgo_loss_create(const lk_context *ctx, const char *id, lk_loss **out, char **msg) {
	LKGO_CALL(lk_loss_create(ctx, id, out));
}
static int32_t lkgo_loss_describe(const lk_context *ctx, const char *id, lk_loss_info *out, char **msg) {
	LKGO_CALL(lk_loss_describe(ctx, id, out));
}
static int32_t lkgo_loss_input_info(const lk_context *ctx, const char *id, size_t k, lk_input_info *out, char **msg) {
	LKGO_CALL(lk_loss_describe_input(ctx, id, k, out));
}
static int32_t lkgo_loss_param_info(const lk_context *ctx, const char *id, size_t k, lk_param_info *out, char **msg) {
	LKGO_CALL(lk_loss_describe_param(ctx, id, k, out));
}
static int32_t lkgo_loss_aux_info(const lk_context *ctx, const char *id, size_t k, lk_aux_info *out, char **msg) {
	LKGO_CALL(lk_loss_describe_aux(ctx, id, k, out));
}
static const char *lkgo_loss_param_choice(const lk_context *ctx, const char *id, size_t p, size_t c, char **msg) {
	const char *s = lk_loss_param_choice(ctx, id, p, c);
	if (s == NULL) *msg = lkgo_error_copy();
	return s;
}
static int32_t lkgo_set_f64(lk_loss *l, const char *name, double v, char **msg) {
	LKGO_CALL(lk_loss_set_f64(l, name, v));
}
static int32_t lkgo_set_i64(lk_loss *l, const char *name, int64_t v, char **msg) {
	LKGO_CALL(lk_loss_set_i64(l, name, v));
}
static int32_t lkgo_set_bool(lk_loss *l, const char *name, int v, char **msg) {
	LKGO_CALL(lk_loss_set_bool(l, name, v != 0));
}
static int32_t lkgo_set_enum(lk_loss *l, const char *name, const char *v, char **msg) {
	LKGO_CALL(lk_loss_set_enum(l, name, v));
}
static int32_t lkgo_get_f64(const lk_loss *l, const char *name, double *v, char **msg) {
	LKGO_CALL(lk_loss_get_f64(l, name, v));
}
static int32_t lkgo_get_i64(const lk_loss *l, const char *name, int64_t *v, char **msg) {
	LKGO_CALL(lk_loss_get_i64(l, name, v));
}
static int32_t lkgo_get_bool(const lk_loss *l, const char *name, int *v, char **msg) {
	bool b = false;
	int32_t s = lk_loss_get_bool(l, name, &b);
	if (s != LK_OK) {
		*msg = lkgo_error_copy();
		return s;
	}
	*v = b ? 1 : 0;
	return s;
}
static int32_t lkgo_get_enum(const lk_loss *l, const char *name, const char **v, char **msg) {
	LKGO_CALL(lk_loss_get_enum(l, name, v));
}
static int32_t lkgo_loss_check(const lk_loss *l, char **msg) {
	LKGO_CALL(lk_loss_check(l));
}
static int32_t lkgo_plugin_load(const lk_context *ctx, const char *path, const char *entry, char **msg) {
	LKGO_CALL(lk_plugin_load(ctx, path, entry));
}
static int32_t lkgo_plugin_describe(const lk_context *ctx, size_t index, lk_plugin_info *out, char **msg) {
	LKGO_CALL(lk_plugin_describe(ctx, index, out));
}
static int32_t lkgo_buffer_create(const lk_context *ctx, uint64_t n, lk_buffer **out, char **msg) {
	LKGO_CALL(lk_buffer_create(ctx, n, out));
}
static int32_t lkgo_buffer_write(const lk_buffer *b, uint64_t off, const void *src, size_t n, char **msg) {
	LKGO_CALL(lk_buffer_write(b, off, src, n));
}
static int32_t lkgo_buffer_read(const lk_buffer *b, uint64_t off, void *dst, size_t n, char **msg) {
	LKGO_CALL(lk_buffer_read(b, off, dst, n));
}

// One tensor of a compute call, without pointers: `buf` indexes the buffer arguments
// (host memory, or an lk_buffer handle when `device` is 1).
typedef struct lkgo_view {
	int32_t buf;    // -1: data NULL (absent input / unwanted gradient)
	int32_t ndim;
	int32_t dtype;  // 0: f32, 1: i64
	int32_t device; // 0: host memory, 1: an lk_buffer (LK_DEVICE_LKBUFFER)
	uint64_t byte_offset;
	int64_t shape[LK_MAX_NDIM];
} lkgo_view;

#define LKGO_MAX_BUFS 24
#define LKGO_MAX_VIEWS 64

// views holds n_in inputs, n_grads gradient slots, the loss output, the grad_output when
// has_go, then n_aux auxiliary outputs named by aux_names.
static int32_t lkgo_compute(const lk_loss *loss, const lkgo_view *views, int32_t n_in, int32_t n_grads,
                            int32_t has_go, int32_t n_aux, char **aux_names, int32_t reduction, char **msg,
                            void *b0, void *b1, void *b2, void *b3, void *b4, void *b5, void *b6, void *b7,
                            void *b8, void *b9, void *b10, void *b11, void *b12, void *b13, void *b14, void *b15,
                            void *b16, void *b17, void *b18, void *b19, void *b20, void *b21, void *b22, void *b23) {
	void *bufs[LKGO_MAX_BUFS] = {b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11,
	                             b12, b13, b14, b15, b16, b17, b18, b19, b20, b21, b22, b23};
	lk_tensor t[LKGO_MAX_VIEWS];
	lk_aux_output aux[LKGO_MAX_VIEWS];
	int32_t n = n_in + n_grads + 1 + (has_go ? 1 : 0) + n_aux;
	if (n_in < 0 || n_grads < 0 || n_aux < 0 || n > LKGO_MAX_VIEWS) {
		const char *m = "losskit (Go): too many tensors in one compute call";
		*msg = (char *)malloc(strlen(m) + 1);
		if (*msg != NULL) memcpy(*msg, m, strlen(m) + 1);
		return LK_ERR_INVALID_ARG;
	}
	for (int32_t k = 0; k < n; k++) {
		const lkgo_view *v = &views[k];
		memset(&t[k], 0, sizeof t[k]);
		t[k].data = (v->buf >= 0 && v->buf < LKGO_MAX_BUFS) ? bufs[v->buf] : NULL;
		t[k].device.device_type = v->device == 1 ? LK_DEVICE_LKBUFFER : LK_DEVICE_CPU;
		t[k].device.device_id = 0;
		t[k].ndim = v->ndim;
		t[k].dtype.code = v->dtype == 0 ? LK_DTYPE_CODE_FLOAT : LK_DTYPE_CODE_INT;
		t[k].dtype.bits = v->dtype == 0 ? 32 : 64;
		t[k].dtype.lanes = 1;
		t[k].shape = v->shape;
		t[k].strides = NULL;
		t[k].byte_offset = v->byte_offset;
	}
	int32_t out = n_in + n_grads;
	int32_t first_aux = out + 1 + (has_go ? 1 : 0);
	for (int32_t k = 0; k < n_aux; k++) {
		aux[k].name = aux_names[k];
		aux[k].tensor = t[first_aux + k];
	}
	LKGO_CALL(lk_loss_compute(loss, n_in > 0 ? t : NULL, (size_t)n_in, reduction, has_go ? &t[out + 1] : NULL,
	                          &t[out], n_grads > 0 ? &t[n_in] : NULL, (size_t)n_grads,
	                          n_aux > 0 ? aux : NULL, (size_t)n_aux));
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"
)

// maxBuffers is the number of distinct data buffers one compute call can pass.
const maxBuffers = C.LKGO_MAX_BUFS

// takeMessage turns a message copied by a shim into a Go string and frees it.
func takeMessage(msg *C.char) string {
	if msg == nil {
		return ""
	}
	s := C.GoString(msg)
	C.free(unsafe.Pointer(msg))
	return s
}

// status turns a shim's result into an error (nil for LK_OK).
func status(s C.int32_t, msg *C.char) error {
	m := takeMessage(msg)
	if s == C.LK_OK {
		return nil
	}
	return &Error{Code: Status(s), Msg: m}
}

// ---------------------------------------------------------------------------------------
// Version and backends
// ---------------------------------------------------------------------------------------

// Version is the run-time library version, e.g. "0.1.0".
func Version() string { return C.GoString(C.lk_version_string()) }

// VersionMatches reports whether the loaded library has the version and C ABI of the
// header this package was compiled against.
func VersionMatches() bool {
	return C.lk_version_number() == C.LK_VERSION_NUMBER && C.lk_abi_version() == C.LK_ABI_VERSION
}

// Backend selects where losses are computed.
type Backend int32

// Backends.
const (
	BackendAuto Backend = C.LK_BACKEND_AUTO
	BackendCPU  Backend = C.LK_BACKEND_CPU
	BackendWGPU Backend = C.LK_BACKEND_WGPU
)

// BackendAvailable reports whether a backend can be used on this machine.
func BackendAvailable(b Backend) bool { return bool(C.lk_backend_available(C.int32_t(b))) }

// Reduction of per-sample losses. The zero value is Mean, losskit's default.
type Reduction int32

// Reductions.
const (
	Mean Reduction = iota // weighted mean over contributing samples
	Sum                   // sum over samples
	None                  // one loss per sample
)

func (r Reduction) c() C.int32_t {
	switch r {
	case Mean:
		return C.LK_REDUCTION_MEAN
	case Sum:
		return C.LK_REDUCTION_SUM
	case None:
		return C.LK_REDUCTION_NONE
	}
	return -1 // refused by losskit with ErrInvalidArg
}

// ---------------------------------------------------------------------------------------
// Context
// ---------------------------------------------------------------------------------------

// Context is a backend and the losses it knows. It is safe for concurrent use. Close
// frees it; a finalizer frees it if Close is never called. Losses created from it stay
// valid after it is closed.
type Context struct {
	mu  sync.RWMutex
	ptr *C.lk_context
}

// NewContext creates a context on a backend.
func NewContext(b Backend) (*Context, error) {
	var p *C.lk_context
	var msg *C.char
	if err := status(C.lkgo_context_create(C.int32_t(b), &p, &msg), msg); err != nil {
		return nil, err
	}
	c := &Context{ptr: p}
	runtime.SetFinalizer(c, (*Context).Close)
	return c, nil
}

// Close frees the context. It is safe to call more than once.
func (c *Context) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr != nil {
		C.lk_context_free(c.ptr)
		c.ptr = nil
	}
	runtime.SetFinalizer(c, nil)
}

func (c *Context) lock() (*C.lk_context, error) {
	c.mu.RLock()
	if c.ptr == nil {
		c.mu.RUnlock()
		return nil, errorf(ErrNullArg, "losskit: Context used after Close")
	}
	return c.ptr, nil
}

// Backend is the backend computations run on (BackendAuto resolved at creation).
func (c *Context) Backend() Backend {
	p, err := c.lock()
	if err != nil {
		return -1
	}
	defer c.mu.RUnlock()
	b := Backend(C.lk_context_backend(p))
	runtime.KeepAlive(c)
	return b
}

// Losses lists the ids of every loss the context knows (builtins, then plugins).
func (c *Context) Losses() []string {
	p, err := c.lock()
	if err != nil {
		return nil
	}
	defer c.mu.RUnlock()
	n := int(C.lk_loss_count(p))
	ids := make([]string, 0, n)
	for k := 0; k < n; k++ {
		ids = append(ids, C.GoString(C.lk_loss_id_at(p, C.size_t(k))))
	}
	runtime.KeepAlive(c)
	return ids
}

// InputInfo describes one input of a loss.
type InputInfo struct {
	Name, Shape, Doc string
	Letters          []string // Shape split at commas: "N,C" -> ["N", "C"]
	IsInt            bool     // int64 (class indices); otherwise float32
	Differentiable   bool
	Optional         bool
}

// ParamType is the type of a loss parameter.
type ParamType int32

// Parameter types.
const (
	ParamF64  ParamType = C.LK_PARAM_F64
	ParamI64  ParamType = C.LK_PARAM_I64
	ParamBool ParamType = C.LK_PARAM_BOOL
	ParamEnum ParamType = C.LK_PARAM_ENUM
)

// ParamInfo describes one parameter: its type, default and valid range (the fields of
// its type are meaningful).
type ParamInfo struct {
	Name, Doc          string
	Type               ParamType
	DefaultF64, MinF64 float64
	MaxF64             float64
	MinOpen, MaxOpen   bool
	DefaultI64, MinI64 int64
	MaxI64             int64
	DefaultBool        bool
	DefaultEnum        string
	Choices            []string
}

// AuxInfo describes an auxiliary output.
type AuxInfo struct {
	Name, Shape, Doc string
	Letters          []string
}

// LossInfo is everything the registry says about a loss.
type LossInfo struct {
	ID, Family, Summary, Source string
	Rows                        string // shape letter of the per-sample dimension
	BatchLevel                  bool   // one scalar per batch: reduction None is refused
	InPlace                     bool   // the first input's gradient may overwrite it
	Inputs                      []InputInfo
	Params                      []ParamInfo
	Aux                         []AuxInfo
}

func letters(s string) []string {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// Describe returns the full description of a loss.
func (c *Context) Describe(id string) (*LossInfo, error) {
	p, err := c.lock()
	if err != nil {
		return nil, err
	}
	defer c.mu.RUnlock()
	defer runtime.KeepAlive(c)
	return describe(p, id)
}

func describe(p *C.lk_context, id string) (*LossInfo, error) {
	cid := C.CString(id)
	defer C.free(unsafe.Pointer(cid))
	var li C.lk_loss_info
	var msg *C.char
	if err := status(C.lkgo_loss_describe(p, cid, &li, &msg), msg); err != nil {
		return nil, err
	}
	out := &LossInfo{
		ID: C.GoString(li.id), Family: C.GoString(li.family), Summary: C.GoString(li.summary),
		Source: C.GoString(li.source), Rows: C.GoString(li.rows),
		BatchLevel: bool(li.batch_level), InPlace: bool(li.in_place),
	}
	for k := 0; k < int(li.n_inputs); k++ {
		var ii C.lk_input_info
		if err := status(C.lkgo_loss_input_info(p, cid, C.size_t(k), &ii, &msg), msg); err != nil {
			return nil, err
		}
		shape := C.GoString(ii.shape)
		out.Inputs = append(out.Inputs, InputInfo{
			Name: C.GoString(ii.name), Shape: shape, Doc: C.GoString(ii.doc), Letters: letters(shape),
			IsInt: ii.dtype.code == C.LK_DTYPE_CODE_INT, Differentiable: bool(ii.differentiable),
			Optional: bool(ii.optional),
		})
	}
	for k := 0; k < int(li.n_params); k++ {
		var pi C.lk_param_info
		if err := status(C.lkgo_loss_param_info(p, cid, C.size_t(k), &pi, &msg), msg); err != nil {
			return nil, err
		}
		info := ParamInfo{
			Name: C.GoString(pi.name), Doc: C.GoString(pi.doc), Type: ParamType(pi.type_),
			DefaultF64: float64(pi.default_f64), MinF64: float64(pi.min_f64), MaxF64: float64(pi.max_f64),
			MinOpen: bool(pi.min_open), MaxOpen: bool(pi.max_open),
			DefaultI64: int64(pi.default_i64), MinI64: int64(pi.min_i64), MaxI64: int64(pi.max_i64),
			DefaultBool: bool(pi.default_bool), DefaultEnum: C.GoString(pi.default_enum),
		}
		for ch := 0; ch < int(pi.n_choices); ch++ {
			s := C.lkgo_loss_param_choice(p, cid, C.size_t(k), C.size_t(ch), &msg)
			if s == nil {
				return nil, &Error{Code: ErrInternal, Msg: takeMessage(msg)}
			}
			info.Choices = append(info.Choices, C.GoString(s))
		}
		out.Params = append(out.Params, info)
	}
	for k := 0; k < int(li.n_aux); k++ {
		var ai C.lk_aux_info
		if err := status(C.lkgo_loss_aux_info(p, cid, C.size_t(k), &ai, &msg), msg); err != nil {
			return nil, err
		}
		shape := C.GoString(ai.shape)
		out.Aux = append(out.Aux, AuxInfo{Name: C.GoString(ai.name), Shape: shape, Doc: C.GoString(ai.doc), Letters: letters(shape)})
	}
	return out, nil
}

// NewLoss creates a loss with its default parameters.
func (c *Context) NewLoss(id string) (*Loss, error) {
	p, err := c.lock()
	if err != nil {
		return nil, err
	}
	defer c.mu.RUnlock()
	defer runtime.KeepAlive(c)
	cid := C.CString(id)
	defer C.free(unsafe.Pointer(cid))
	var lp *C.lk_loss
	var msg *C.char
	if err := status(C.lkgo_loss_create(p, cid, &lp, &msg), msg); err != nil {
		return nil, err
	}
	info, err := describe(p, id)
	if err != nil {
		C.lk_loss_free(lp)
		return nil, err
	}
	l := &Loss{ptr: lp, info: info}
	runtime.SetFinalizer(l, (*Loss).Close)
	return l, nil
}

// ---------------------------------------------------------------------------------------
// Plugins
// ---------------------------------------------------------------------------------------

// LoadPlugin loads a plugin (a shared object) and registers its losses into the context,
// calling its default entry symbol (lk_plugin_init, then lk_plugin_<stem>_init).
// LOADING A PLUGIN RUNS ITS CODE with the rights of this process: load only plugins you
// trust. On error (ErrPluginLoad, ErrPluginSymbol, ErrPluginABI, ErrPluginDuplicateID,
// ErrPluginInvalidSpec, ErrPluginFailed; the message names the file) nothing is
// registered. A bare file name is relative to the current directory.
func (c *Context) LoadPlugin(path string) error { return c.LoadPluginEntry(path, "") }

// LoadPluginEntry is LoadPlugin with an explicit entry symbol ("" = the default ones).
func (c *Context) LoadPluginEntry(path, entry string) error {
	p, err := c.lock()
	if err != nil {
		return err
	}
	defer c.mu.RUnlock()
	defer runtime.KeepAlive(c)
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var centry *C.char
	if entry != "" {
		centry = C.CString(entry)
		defer C.free(unsafe.Pointer(centry))
	}
	var msg *C.char
	return status(C.lkgo_plugin_load(p, cpath, centry, &msg), msg)
}

// PluginInfo describes a loaded plugin.
type PluginInfo struct {
	Name, Version string
	Path          string   // as given to LoadPlugin
	Entry         string   // the entry symbol that was called
	Losses        []string // ids of the losses it registered
}

// PluginCount is the number of plugins loaded into the context.
func (c *Context) PluginCount() int {
	p, err := c.lock()
	if err != nil {
		return 0
	}
	defer c.mu.RUnlock()
	n := int(C.lk_plugin_count(p))
	runtime.KeepAlive(c)
	return n
}

// Plugin describes the plugin at index (load order); ErrInvalidArg when out of range.
func (c *Context) Plugin(index int) (*PluginInfo, error) {
	p, err := c.lock()
	if err != nil {
		return nil, err
	}
	defer c.mu.RUnlock()
	defer runtime.KeepAlive(c)
	if index < 0 {
		return nil, errorf(ErrInvalidArg, "losskit: plugin index %d is negative", index)
	}
	var pi C.lk_plugin_info
	var msg *C.char
	if err := status(C.lkgo_plugin_describe(p, C.size_t(index), &pi, &msg), msg); err != nil {
		return nil, err
	}
	out := &PluginInfo{Name: C.GoString(pi.name), Version: C.GoString(pi.version), Path: C.GoString(pi.path), Entry: C.GoString(pi.entry)}
	for k := 0; k < int(pi.n_losses); k++ {
		out.Losses = append(out.Losses, C.GoString(C.lk_plugin_loss_id_at(p, C.size_t(index), C.size_t(k))))
	}
	return out, nil
}

// ---------------------------------------------------------------------------------------
// Device buffers
// ---------------------------------------------------------------------------------------

// Buffer is a device-resident buffer of a WGPU context (lk_buffer). Its tensors
// (Buffer.F32, Buffer.I64) are passed to ComputeTensors like host tensors, as inputs and
// gradient slots; the loss, grad_output and aux outputs stay in host memory. It keeps its
// context's GPU device alive, so it may outlive the Context. Methods are safe for
// concurrent use, but do not write a buffer while a compute using it runs. Close frees
// it (waiting for computes that use it); a finalizer frees it if Close is never called.
type Buffer struct {
	mu   sync.RWMutex
	ptr  *C.lk_buffer
	size uint64
}

// NewBuffer allocates nBytes on the context's GPU (contents unspecified until written).
// A CPU context gives ErrUnsupported.
func (c *Context) NewBuffer(nBytes uint64) (*Buffer, error) {
	p, err := c.lock()
	if err != nil {
		return nil, err
	}
	defer c.mu.RUnlock()
	defer runtime.KeepAlive(c)
	var bp *C.lk_buffer
	var msg *C.char
	if err := status(C.lkgo_buffer_create(p, C.uint64_t(nBytes), &bp, &msg), msg); err != nil {
		return nil, err
	}
	b := &Buffer{ptr: bp, size: uint64(C.lk_buffer_size(bp))}
	runtime.SetFinalizer(b, (*Buffer).Close)
	return b, nil
}

// Close frees the buffer. It is safe to call more than once.
func (b *Buffer) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ptr != nil {
		C.lk_buffer_free(b.ptr)
		b.ptr = nil
	}
	runtime.SetFinalizer(b, nil)
}

// Size is the size in bytes.
func (b *Buffer) Size() uint64 { return b.size }

func (b *Buffer) copy(write bool, offset uint64, p unsafe.Pointer, n int) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.ptr == nil {
		return errorf(ErrNullArg, "losskit: Buffer used after Close")
	}
	var msg *C.char
	var s C.int32_t
	if write {
		s = C.lkgo_buffer_write(b.ptr, C.uint64_t(offset), p, C.size_t(n), &msg)
	} else {
		s = C.lkgo_buffer_read(b.ptr, C.uint64_t(offset), p, C.size_t(n), &msg)
	}
	runtime.KeepAlive(b)
	return status(s, msg)
}

// WriteF32 copies data to byte offset (a multiple of 4) of the buffer.
func (b *Buffer) WriteF32(offset uint64, data []float32) error {
	if len(data) == 0 {
		return nil
	}
	return b.copy(true, offset, unsafe.Pointer(&data[0]), 4*len(data))
}

// WriteI64 copies data to byte offset (a multiple of 4) of the buffer.
func (b *Buffer) WriteI64(offset uint64, data []int64) error {
	if len(data) == 0 {
		return nil
	}
	return b.copy(true, offset, unsafe.Pointer(&data[0]), 8*len(data))
}

// ReadF32 fills dst from byte offset of the buffer, after the computes that write it.
func (b *Buffer) ReadF32(offset uint64, dst []float32) error {
	if len(dst) == 0 {
		return nil
	}
	return b.copy(false, offset, unsafe.Pointer(&dst[0]), 4*len(dst))
}

// ReadI64 fills dst from byte offset of the buffer, after the computes that write it.
func (b *Buffer) ReadI64(offset uint64, dst []int64) error {
	if len(dst) == 0 {
		return nil
	}
	return b.copy(false, offset, unsafe.Pointer(&dst[0]), 8*len(dst))
}

// F32 is a float32 tensor of the given shape stored in the buffer from byteOffset.
func (b *Buffer) F32(byteOffset uint64, shape ...int64) Tensor {
	return Tensor{dev: b, off: byteOffset, shape: shape}
}

// I64 is an int64 tensor of the given shape stored in the buffer from byteOffset.
func (b *Buffer) I64(byteOffset uint64, shape ...int64) Tensor {
	return Tensor{dev: b, off: byteOffset, shape: shape, isInt: true}
}

// ---------------------------------------------------------------------------------------
// Loss
// ---------------------------------------------------------------------------------------

// Loss is a configured loss. All methods are safe for concurrent use: computes run in
// parallel, and a Set waits for running computes. Close frees it; a finalizer frees it if
// Close is never called.
type Loss struct {
	mu   sync.RWMutex
	ptr  *C.lk_loss
	info *LossInfo
}

// Close frees the loss. It is safe to call more than once.
func (l *Loss) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ptr != nil {
		C.lk_loss_free(l.ptr)
		l.ptr = nil
	}
	runtime.SetFinalizer(l, nil)
}

// ID is the loss id.
func (l *Loss) ID() string { return l.info.ID }

// Info is the loss's description, captured at creation.
func (l *Loss) Info() *LossInfo { return l.info }

func (l *Loss) set(name string, call func(*C.lk_loss, *C.char, **C.char) C.int32_t) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ptr == nil {
		return errorf(ErrNullArg, "losskit: Loss used after Close")
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var msg *C.char
	err := status(call(l.ptr, cname, &msg), msg)
	runtime.KeepAlive(l)
	return err
}

// SetF64 sets a float parameter. A value out of range gives ErrInvalidParam (never a
// clamp; the previous value is kept), an unknown name ErrUnknownParam. Combinations with
// other parameters are checked by Check and by every compute, so any order of sets works.
func (l *Loss) SetF64(name string, v float64) error {
	return l.set(name, func(p *C.lk_loss, n *C.char, m **C.char) C.int32_t { return C.lkgo_set_f64(p, n, C.double(v), m) })
}

// SetI64 sets an integer parameter (e.g. ignore_index).
func (l *Loss) SetI64(name string, v int64) error {
	return l.set(name, func(p *C.lk_loss, n *C.char, m **C.char) C.int32_t { return C.lkgo_set_i64(p, n, C.int64_t(v), m) })
}

// SetBool sets a boolean parameter.
func (l *Loss) SetBool(name string, v bool) error {
	b := C.int(0)
	if v {
		b = 1
	}
	return l.set(name, func(p *C.lk_loss, n *C.char, m **C.char) C.int32_t { return C.lkgo_set_bool(p, n, b, m) })
}

// SetEnum sets an enum parameter by the name of its choice.
func (l *Loss) SetEnum(name, choice string) error {
	cv := C.CString(choice)
	defer C.free(unsafe.Pointer(cv))
	return l.set(name, func(p *C.lk_loss, n *C.char, m **C.char) C.int32_t { return C.lkgo_set_enum(p, n, cv, m) })
}

// Set sets a parameter from a Go value: float32/float64 -> f64, any integer -> i64,
// bool -> bool, string -> enum choice.
func (l *Loss) Set(name string, v any) error {
	switch x := v.(type) {
	case float64:
		return l.SetF64(name, x)
	case float32:
		return l.SetF64(name, float64(x))
	case int:
		return l.SetI64(name, int64(x))
	case int64:
		return l.SetI64(name, x)
	case int32:
		return l.SetI64(name, int64(x))
	case bool:
		return l.SetBool(name, x)
	case string:
		return l.SetEnum(name, x)
	}
	return errorf(ErrInvalidParam, "%s: %s: unsupported Go type %T", l.info.ID, name, v)
}

// GetF64 reads a float parameter.
func (l *Loss) GetF64(name string) (float64, error) {
	var v C.double
	err := l.get(name, func(p *C.lk_loss, n *C.char, m **C.char) C.int32_t { return C.lkgo_get_f64(p, n, &v, m) })
	return float64(v), err
}

// GetI64 reads an integer parameter.
func (l *Loss) GetI64(name string) (int64, error) {
	var v C.int64_t
	err := l.get(name, func(p *C.lk_loss, n *C.char, m **C.char) C.int32_t { return C.lkgo_get_i64(p, n, &v, m) })
	return int64(v), err
}

// GetBool reads a boolean parameter.
func (l *Loss) GetBool(name string) (bool, error) {
	var v C.int
	err := l.get(name, func(p *C.lk_loss, n *C.char, m **C.char) C.int32_t { return C.lkgo_get_bool(p, n, &v, m) })
	return v != 0, err
}

// GetEnum reads the chosen choice of an enum parameter.
func (l *Loss) GetEnum(name string) (string, error) {
	var v *C.char
	err := l.get(name, func(p *C.lk_loss, n *C.char, m **C.char) C.int32_t { return C.lkgo_get_enum(p, n, &v, m) })
	if err != nil {
		return "", err
	}
	// The choice name belongs to the loss's registry entry; copied into Go memory.
	return C.GoString(v), nil
}

// Check checks the parameters together, as every compute does first. The setters check
// each value against its own range only, so parameters may be set in any order; a
// combination the loss refuses gives ErrInvalidParam with a message naming the parameters.
func (l *Loss) Check() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.ptr == nil {
		return errorf(ErrNullArg, "losskit: Loss used after Close")
	}
	var msg *C.char
	err := status(C.lkgo_loss_check(l.ptr, &msg), msg)
	runtime.KeepAlive(l)
	return err
}

func (l *Loss) get(name string, call func(*C.lk_loss, *C.char, **C.char) C.int32_t) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.ptr == nil {
		return errorf(ErrNullArg, "losskit: Loss used after Close")
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var msg *C.char
	err := status(call(l.ptr, cname, &msg), msg)
	runtime.KeepAlive(l)
	return err
}

// ---------------------------------------------------------------------------------------
// Tensors and compute
// ---------------------------------------------------------------------------------------

// Tensor is a borrowed, row-major view of a float32 or int64 slice with a shape. Nothing
// is copied: losskit reads (and, for outputs, writes) the slice itself during the call.
type Tensor struct {
	f32    []float32
	i64    []int64
	shape  []int64
	isInt  bool
	absent bool
	dev    *Buffer // a device tensor (Buffer.F32 / Buffer.I64): data in dev from byte off
	off    uint64
}

// F32 views a float32 slice with a shape (none given: 1-D of len(data)).
func F32(data []float32, shape ...int64) Tensor {
	if len(shape) == 0 {
		shape = []int64{int64(len(data))}
	}
	return Tensor{f32: data, shape: shape}
}

// I64 views an int64 slice with a shape (none given: 1-D of len(data)).
func I64(data []int64, shape ...int64) Tensor {
	if len(shape) == 0 {
		shape = []int64{int64(len(data))}
	}
	return Tensor{i64: data, shape: shape, isInt: true}
}

// Absent is an absent optional input.
func Absent() Tensor { return Tensor{absent: true} }

// Shape is the tensor's shape.
func (t Tensor) Shape() []int64 { return t.shape }

func (t Tensor) numel() int64 {
	n := int64(1)
	for _, d := range t.shape {
		n *= d
	}
	return n
}

func (t Tensor) len() int {
	if t.isInt {
		return len(t.i64)
	}
	return len(t.f32)
}

func (t Tensor) ptr() unsafe.Pointer {
	switch {
	case t.isInt && len(t.i64) > 0:
		return unsafe.Pointer(&t.i64[0])
	case !t.isInt && len(t.f32) > 0:
		return unsafe.Pointer(&t.f32[0])
	}
	return nil
}

func (t Tensor) check(what string) error {
	if t.absent {
		return nil
	}
	if len(t.shape) > C.LK_MAX_NDIM {
		return errorf(ErrInvalidArg, "%s: rank %d exceeds %d", what, len(t.shape), C.LK_MAX_NDIM)
	}
	for _, d := range t.shape {
		if d < 0 {
			return errorf(ErrShapeMismatch, "%s: shape %v has a negative size", what, t.shape)
		}
	}
	if t.dev != nil {
		el := uint64(4)
		if t.isInt {
			el = 8
		}
		if t.off+uint64(t.numel())*el > t.dev.size {
			return errorf(ErrBufferTooSmall, "%s: a device buffer of %d bytes cannot hold shape %v at byte offset %d",
				what, t.dev.size, t.shape, t.off)
		}
		return nil
	}
	if int64(t.len()) != t.numel() {
		return errorf(ErrShapeMismatch, "%s: a slice of %d elements cannot be viewed as shape %v (%d elements)",
			what, t.len(), t.shape, t.numel())
	}
	return nil
}

// call gathers the views and buffers of one compute call. The device buffers it uses
// are read-locked (so not closed) until unlock.
type call struct {
	views  []C.lkgo_view
	bufs   [maxBuffers]unsafe.Pointer
	nbufs  int
	locked []*Buffer
}

func (c *call) unlock() {
	for _, b := range c.locked {
		b.mu.RUnlock()
	}
	c.locked = nil
}

func (c *call) add(t Tensor, what string) error {
	if err := t.check(what); err != nil {
		return err
	}
	v := C.lkgo_view{buf: -1}
	if !t.absent {
		v.ndim = C.int32_t(len(t.shape))
		for k, d := range t.shape {
			v.shape[k] = C.int64_t(d)
		}
		if t.isInt {
			v.dtype = 1
		}
		p := t.ptr()
		if t.dev != nil {
			seen := false
			for _, b := range c.locked {
				seen = seen || b == t.dev
			}
			if !seen {
				t.dev.mu.RLock()
				c.locked = append(c.locked, t.dev)
			}
			if t.dev.ptr == nil {
				return errorf(ErrNullArg, "%s: Buffer used after Close", what)
			}
			// A C pointer (the lk_buffer handle), passed on like the host buffers.
			p = unsafe.Pointer(t.dev.ptr)
			v.device = 1
			v.byte_offset = C.uint64_t(t.off)
		}
		if p != nil {
			idx := -1
			for k := 0; k < c.nbufs; k++ {
				if c.bufs[k] == p {
					idx = k
				}
			}
			if idx < 0 {
				if c.nbufs == maxBuffers {
					return errorf(ErrInvalidArg, "%s: more than %d distinct buffers in one compute call", what, maxBuffers)
				}
				idx = c.nbufs
				c.bufs[idx] = p
				c.nbufs++
			}
			v.buf = C.int32_t(idx)
		}
	}
	c.views = append(c.views, v)
	return nil
}

// AuxOut is a named auxiliary output destination for ComputeInto.
type AuxOut struct {
	Name string
	Out  Tensor // F32 view shaped as the loss's AuxInfo says
}

// ComputeInto is the allocation-free compute: the loss goes into lossOut (one value for
// Mean/Sum, one per sample for None) and the gradient of inputs[k] into grads[k], shaped
// like inputs[k] (nil: not wanted). Passing the input's own slice as its gradient
// computes it in place (for losses whose Info().InPlace is true). gradOutput (nil = 1) is
// the upstream gradient: one value for Mean/Sum, one per sample for None.
func (l *Loss) ComputeInto(inputs []Tensor, r Reduction, lossOut []float32, grads [][]float32, gradOutput []float32, aux ...AuxOut) error {
	gs := make([]Tensor, len(grads))
	for k, g := range grads {
		gs[k] = Absent()
		if g != nil {
			if k >= len(inputs) {
				return errorf(ErrInvalidArg, "%s: gradient slot %d has no input", l.info.ID, k)
			}
			gs[k] = F32(g, inputs[k].shape...)
		}
	}
	return l.ComputeTensors(inputs, r, lossOut, gs, gradOutput, aux...)
}

// ComputeTensors is ComputeInto with the gradient slots as tensors, so that they can live
// in device buffers: grads[k] is Absent() (not wanted), an F32 host view or a Buffer.F32
// view shaped like inputs[k]. Passing an input's own view as its gradient computes it in
// place.
func (l *Loss) ComputeTensors(inputs []Tensor, r Reduction, lossOut []float32, grads []Tensor, gradOutput []float32, aux ...AuxOut) error {
	c := &call{views: make([]C.lkgo_view, 0, len(inputs)+len(grads)+2+len(aux))}
	defer c.unlock()
	for k, t := range inputs {
		if err := c.add(t, fmt.Sprintf("%s: inputs[%d]", l.info.ID, k)); err != nil {
			return err
		}
	}
	for k, g := range grads {
		if !g.absent && k >= len(inputs) {
			return errorf(ErrInvalidArg, "%s: gradient slot %d has no input", l.info.ID, k)
		}
		if err := c.add(g, fmt.Sprintf("%s: grads[%d]", l.info.ID, k)); err != nil {
			return err
		}
	}
	scalar := func(s []float32) Tensor {
		if r == None {
			return F32(s)
		}
		return F32(s, []int64{}...)
	}
	if err := c.add(scalar(lossOut), l.info.ID+": loss output"); err != nil {
		return err
	}
	if gradOutput != nil {
		if err := c.add(scalar(gradOutput), l.info.ID+": grad_output"); err != nil {
			return err
		}
	}
	names := make([]*C.char, len(aux))
	for k, a := range aux {
		names[k] = C.CString(a.Name)
		defer C.free(unsafe.Pointer(names[k]))
		if err := c.add(a.Out, fmt.Sprintf("%s: aux output '%s'", l.info.ID, a.Name)); err != nil {
			return err
		}
	}
	var namesPtr **C.char
	if len(names) > 0 {
		namesPtr = &names[0]
	}
	hasGo := C.int32_t(0)
	if gradOutput != nil {
		hasGo = 1
	}

	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.ptr == nil {
		return errorf(ErrNullArg, "losskit: Loss used after Close")
	}
	b := &c.bufs
	var msg *C.char
	s := C.lkgo_compute(l.ptr, &c.views[0], C.int32_t(len(inputs)), C.int32_t(len(grads)), hasGo,
		C.int32_t(len(aux)), namesPtr, r.c(), &msg,
		b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
		b[12], b[13], b[14], b[15], b[16], b[17], b[18], b[19], b[20], b[21], b[22], b[23])
	runtime.KeepAlive(l)
	runtime.KeepAlive(inputs)
	runtime.KeepAlive(grads)
	runtime.KeepAlive(lossOut)
	runtime.KeepAlive(gradOutput)
	runtime.KeepAlive(aux)
	return status(s, msg)
}

// Options of Compute. The zero value: Mean, every gradient, no grad_output, no aux.
type Options struct {
	Reduction  Reduction
	NoGrads    bool      // skip the gradients
	GradOutput []float32 // upstream gradient (nil = 1)
	Aux        []string  // auxiliary outputs to return, by name
}

// Result holds what Compute returns.
type Result struct {
	Loss  []float32            // one value for Mean/Sum, one per sample for None
	Grads [][]float32          // per input; nil for non-differentiable or absent inputs
	Aux   map[string][]float32 // the asked auxiliary outputs
}

// Value is the reduced loss (the first value).
func (r *Result) Value() float32 { return r.Loss[0] }

// Compute is the generic call for every loss: it sizes the loss, the gradient of every
// present differentiable input and the asked auxiliary outputs from the loss's
// description, and returns them. opts may be nil.
func (l *Loss) Compute(inputs []Tensor, opts *Options) (*Result, error) {
	if opts == nil {
		opts = &Options{}
	}
	li := l.info
	if len(inputs) > len(li.Inputs) {
		return nil, errorf(ErrInvalidArg, "%s: %d inputs given, the loss takes %d", li.ID, len(inputs), len(li.Inputs))
	}
	dims := map[string]int64{}
	for k, t := range inputs {
		if t.absent {
			continue
		}
		for a, letter := range li.Inputs[k].Letters {
			if a < len(t.shape) {
				if _, ok := dims[letter]; !ok {
					dims[letter] = t.shape[a]
				}
			}
		}
	}
	size := func(letter string) (int64, error) {
		if n, err := strconv.ParseInt(letter, 10, 64); err == nil {
			return n, nil
		}
		n, ok := dims[letter]
		if !ok {
			return 0, errorf(ErrNullArg, "%s: cannot size '%s': no present input has that dimension", li.ID, letter)
		}
		return n, nil
	}
	res := &Result{Grads: make([][]float32, len(li.Inputs)), Aux: map[string][]float32{}}
	nOut := int64(1)
	if opts.Reduction == None {
		n, err := size(li.Rows)
		if err != nil {
			return nil, err
		}
		nOut = n
	}
	res.Loss = make([]float32, nOut)
	var grads [][]float32
	if !opts.NoGrads {
		grads = make([][]float32, len(inputs))
		for k, t := range inputs {
			if li.Inputs[k].Differentiable && !t.absent {
				grads[k] = make([]float32, t.numel())
				res.Grads[k] = grads[k]
			}
		}
	}
	aux := make([]AuxOut, 0, len(opts.Aux))
	for _, name := range opts.Aux {
		var ai *AuxInfo
		for k := range li.Aux {
			if li.Aux[k].Name == name {
				ai = &li.Aux[k]
			}
		}
		if ai == nil {
			return nil, errorf(ErrInvalidArg, "%s: no auxiliary output '%s'", li.ID, name)
		}
		shape := make([]int64, len(ai.Letters))
		n := int64(1)
		for k, letter := range ai.Letters {
			d, err := size(letter)
			if err != nil {
				return nil, err
			}
			shape[k] = d
			n *= d
		}
		buf := make([]float32, n)
		res.Aux[name] = buf
		aux = append(aux, AuxOut{Name: name, Out: F32(buf, shape...)})
	}
	if err := l.ComputeInto(inputs, opts.Reduction, res.Loss, grads, opts.GradOutput, aux...); err != nil {
		return nil, err
	}
	return res, nil
}
