package losskit

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// buildASL compiles the C example plugin (plugins/example_c/asl.c) into a shared object
// in a temporary directory, the way its header comment says.
func buildASL(t *testing.T) string {
	t.Helper()
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	out := filepath.Join(t.TempDir(), "libasl.so")
	cmd := exec.Command(cc, "-std=c99", "-O2", "-shared", "-fPIC", "-I../../include", "-o", out,
		"../../plugins/example_c/asl.c", "-lm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the asl plugin: %v\n%s", err, b)
	}
	return out
}

func softplus(x float64) float64 { return math.Max(x, 0) + math.Log1p(math.Exp(-math.Abs(x))) }

// aslElem is one element of the asymmetric loss (Ridnik et al. 2021) in float64.
func aslElem(x, y, gp, gn, clip float64) float64 {
	p := 1 / (1 + math.Exp(-x))
	pos := math.Pow(1-p, gp) * softplus(-x)
	neg := 0.0
	if pm := p - clip; pm > 0 {
		neg = math.Pow(pm, gn) * -math.Log(1-pm)
	}
	return y*pos + (1-y)*neg
}

func TestPlugin(t *testing.T) {
	path := buildASL(t)
	ctx, err := NewContext(BackendCPU)
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()

	wantCode(t, ctx.LoadPlugin(filepath.Join(t.TempDir(), "libnot_there.so")), ErrPluginLoad, "libnot_there.so")
	wantCode(t, ctx.LoadPluginEntry(path, "no_such_entry"), ErrPluginSymbol, "no_such_entry")
	if ctx.PluginCount() != 0 {
		t.Fatalf("a failed load registered a plugin")
	}
	if err := ctx.LoadPlugin(path); err != nil {
		t.Fatal(err)
	}
	wantCode(t, ctx.LoadPlugin(path), ErrPluginDuplicateID, "asymmetric_loss")
	info, err := ctx.Plugin(0)
	if err != nil {
		t.Fatal(err)
	}
	if ctx.PluginCount() != 1 || info.Name != "asl" || info.Path != path || len(info.Losses) != 1 || info.Losses[0] != "asymmetric_loss" {
		t.Errorf("plugin info %+v (count %d)", info, ctx.PluginCount())
	}
	_, err = ctx.Plugin(1)
	wantCode(t, err, ErrInvalidArg, "")

	l, err := ctx.NewLoss("asymmetric_loss")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Set("gamma_neg", 2.0); err != nil {
		t.Fatal(err)
	}
	gp, _ := l.GetF64("gamma_pos")
	clip, _ := l.GetF64("clip")
	x := []float32{0.5, -1, 2, 0, 1.5, 0.25, -0.5, 3, -2, 0.1, 0.75, 1}
	y := []float32{1, 0, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0}
	r, err := l.Compute([]Tensor{F32(x, n, c), F32(y, n, c)}, &Options{Reduction: None})
	if err != nil {
		t.Fatal(err)
	}
	mean := 0.0
	for i := 0; i < n; i++ {
		want := 0.0
		for k := i * c; k < (i+1)*c; k++ {
			want += aslElem(float64(x[k]), float64(y[k]), gp, 2, clip)
		}
		near(t, "row loss", r.Loss[i], want)
		mean += want / n
	}
	if r.Grads[0] == nil || r.Grads[1] != nil {
		t.Fatalf("gradients: %v", r.Grads)
	}
	// The gradient against a central difference of the float64 reference.
	for k := range x {
		h := 1e-5
		i := k / c
		at := func(v float64) float64 {
			s := 0.0
			for j := i * c; j < (i+1)*c; j++ {
				xj := float64(x[j])
				if j == k {
					xj = v
				}
				s += aslElem(xj, float64(y[j]), gp, 2, clip)
			}
			return s
		}
		fd := (at(float64(x[k])+h) - at(float64(x[k])-h)) / (2 * h)
		if math.Abs(float64(r.Grads[0][k])-fd) > 1e-4*(1+math.Abs(fd)) {
			t.Errorf("grad[%d] = %v, finite difference %v", k, r.Grads[0][k], fd)
		}
	}
	rm, err := l.Compute([]Tensor{F32(x, n, c), F32(y, n, c)}, &Options{NoGrads: true})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "mean", rm.Value(), mean)
}

// gpuContext returns a WGPU context, or skips the test without a GPU adapter unless
// LOSSKIT_REQUIRE_GPU=1, when a missing adapter fails it.
func gpuContext(t *testing.T) *Context {
	t.Helper()
	if !BackendAvailable(BackendWGPU) {
		if os.Getenv("LOSSKIT_REQUIRE_GPU") == "1" {
			t.Fatal("LOSSKIT_REQUIRE_GPU=1 but lk_backend_available(LK_BACKEND_WGPU) is false")
		}
		t.Skip("no GPU adapter (lk_backend_available(LK_BACKEND_WGPU) is false); set LOSSKIT_REQUIRE_GPU=1 to fail instead")
	}
	ctx, err := NewContext(BackendWGPU)
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

func TestBufferOnCPUContext(t *testing.T) {
	ctx, err := NewContext(BackendCPU)
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	_, err = ctx.NewBuffer(64)
	wantCode(t, err, ErrUnsupported, "")
}

func TestBuffer(t *testing.T) {
	ctx := gpuContext(t)
	defer ctx.Close()

	b, err := ctx.NewBuffer(24)
	if err != nil {
		t.Fatal(err)
	}
	if b.Size() != 24 {
		t.Errorf("size %d", b.Size())
	}
	if err := b.WriteF32(0, []float32{1.5, -2, 3.25, 0, 7, -0.5}); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteF32(8, []float32{9, 8}); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 3)
	if err := b.ReadF32(4, got); err != nil {
		t.Fatal(err)
	}
	if got[0] != -2 || got[1] != 9 || got[2] != 8 {
		t.Errorf("read back %v", got)
	}
	wantCode(t, b.WriteF32(2, got), ErrInvalidArg, "")
	wantCode(t, b.ReadF32(24, got), ErrInvalidArg, "")
	b.Close()
	b.Close()
	wantCode(t, b.ReadF32(0, got), ErrNullArg, "after Close")

	// cross_entropy with logits, targets and the gradient in device buffers, against host
	// memory on a CPU context.
	_, ref := newCE(t)
	_, lg := func() (*Context, *Loss) {
		l, err := ctx.NewLoss("cross_entropy")
		if err != nil {
			t.Fatal(err)
		}
		return ctx, l
	}()
	for _, l := range []*Loss{ref, lg} {
		if err := l.Set("label_smoothing", 0.1); err != nil {
			t.Fatal(err)
		}
	}
	want, err := ref.Compute(inputs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := ctx.NewBuffer(16 + 4*n*c) // logits after 16 bytes, to exercise the offset
	y, _ := ctx.NewBuffer(8 * n)
	g, err := ctx.NewBuffer(4 * n * c)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	defer y.Close()
	defer g.Close()
	if err := x.WriteF32(16, logits); err != nil {
		t.Fatal(err)
	}
	if err := y.WriteI64(0, target); err != nil {
		t.Fatal(err)
	}
	val := make([]float32, 1)
	in := []Tensor{x.F32(16, n, c), y.I64(0, n)}
	if err := lg.ComputeTensors(in, Mean, val, []Tensor{g.F32(0, n, c)}, nil); err != nil {
		t.Fatal(err)
	}
	near(t, "device loss", val[0], float64(want.Value()))
	grad := make([]float32, n*c)
	if err := g.ReadF32(0, grad); err != nil {
		t.Fatal(err)
	}
	for k := range grad {
		near(t, "device grad", grad[k], float64(want.Grads[0][k]))
	}
	rows := make([]float32, n)
	if err := lg.ComputeTensors(in, None, rows, nil, nil); err != nil {
		t.Fatal(err)
	}
	mean := 0.0
	for _, v := range rows {
		mean += float64(v) / n
	}
	near(t, "device mean of rows", float32(mean), float64(want.Value()))

	wantCode(t, lg.ComputeTensors([]Tensor{x.F32(32, n, c), y.I64(0, n)}, Mean, val, nil, nil), ErrBufferTooSmall, "device buffer")
	closed, _ := ctx.NewBuffer(8 * n)
	closed.Close()
	wantCode(t, lg.ComputeTensors([]Tensor{x.F32(16, n, c), closed.I64(0, n)}, Mean, val, nil, nil), ErrNullArg, "after Close")
}
