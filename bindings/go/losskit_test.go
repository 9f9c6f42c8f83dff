package losskit

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
)

const n, c = 3, 4

var (
	logits = []float32{0.5, -1, 2, 0, 1.5, 0.25, -0.5, 3, -2, 0, 0.75, 1}
	target = []int64{2, 0, 3}
)

// A plain float64 softmax cross-entropy of one row with label smoothing eps, and its
// gradient (the reference the binding's results are compared with).
func rowRef(z []float32, y int64, eps float64, grad []float64) float64 {
	m := math.Inf(-1)
	for _, v := range z {
		m = math.Max(m, float64(v))
	}
	s, sumZ := 0.0, 0.0
	for _, v := range z {
		s += math.Exp(float64(v) - m)
		sumZ += float64(v)
	}
	lse := m + math.Log(s)
	cc := float64(len(z))
	for k, v := range z {
		p := math.Exp(float64(v) - lse)
		hot := 0.0
		if int64(k) == y {
			hot = 1
		}
		grad[k] = (1-eps)*(p-hot) + eps/cc*(cc*p-1)
	}
	return (1-eps)*(lse-float64(z[y])) + eps/cc*(cc*lse-sumZ)
}

func near(t *testing.T, what string, got float32, want float64) {
	t.Helper()
	if math.Abs(float64(got)-want) > 1e-5*(1+math.Abs(want)) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func newCE(t *testing.T) (*Context, *Loss) {
	t.Helper()
	ctx, err := NewContext(BackendCPU)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ctx.NewLoss("cross_entropy")
	if err != nil {
		t.Fatal(err)
	}
	return ctx, l
}

func inputs() []Tensor { return []Tensor{F32(logits, n, c), I64(target)} }

// wantCode checks that err is a *Error with the code and a message containing needle.
func wantCode(t *testing.T, err error, code Status, needle string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *losskit.Error with %v, got %v", code, err)
	}
	if e.Code != code {
		t.Errorf("code %d (%v), want %d (%v); message %q", e.Code, e.Code, code, code, e.Msg)
	}
	if !strings.Contains(e.Msg, needle) {
		t.Errorf("message %q lacks %q", e.Msg, needle)
	}
	if !errors.Is(err, &Error{Code: code}) {
		t.Errorf("errors.Is does not match the code")
	}
}

func TestVersionAndDescribe(t *testing.T) {
	if !VersionMatches() || Version() == "" {
		t.Fatalf("library version %q does not match the header", Version())
	}
	ctx, l := newCE(t)
	defer ctx.Close()
	defer l.Close()
	if ctx.Backend() != BackendCPU {
		t.Errorf("backend %v", ctx.Backend())
	}
	found := false
	for _, id := range ctx.Losses() {
		info, err := ctx.Describe(id)
		if err != nil {
			t.Fatal(err)
		}
		if info.ID != id || len(info.Inputs) == 0 {
			t.Errorf("describe(%s) = %+v", id, info)
		}
		found = found || id == "cross_entropy"
	}
	if !found {
		t.Fatal("cross_entropy not listed")
	}
	info := l.Info()
	if info.Rows != "N" || !info.InPlace || info.Inputs[0].Name != "logits" || !info.Inputs[0].Differentiable ||
		!info.Inputs[1].IsInt || info.Inputs[1].Differentiable || strings.Join(info.Inputs[0].Letters, ",") != "N,C" {
		t.Errorf("unexpected description %+v", info)
	}
	if Status(12345).String() != "unknown status" || ErrInvalidParam.String() == "" {
		t.Error("status text")
	}
}

func TestComputeMatchesReference(t *testing.T) {
	ctx, l := newCE(t)
	defer ctx.Close()
	defer l.Close()
	for _, eps := range []float64{0, 0.1} {
		if err := l.Set("label_smoothing", eps); err != nil {
			t.Fatal(err)
		}
		if v, _ := l.GetF64("label_smoothing"); v != eps {
			t.Fatalf("label_smoothing = %v", v)
		}
		r, err := l.Compute(inputs(), nil)
		if err != nil {
			t.Fatal(err)
		}
		want := 0.0
		g := make([]float64, n*c)
		for i := 0; i < n; i++ {
			want += rowRef(logits[i*c:(i+1)*c], target[i], eps, g[i*c:(i+1)*c])
		}
		near(t, "loss", r.Value(), want/n)
		if len(r.Grads) != len(l.Info().Inputs) || r.Grads[1] != nil || len(r.Grads[0]) != n*c {
			t.Fatalf("grads layout %v", r.Grads)
		}
		for k := range g {
			near(t, fmt.Sprintf("grad[%d]", k), r.Grads[0][k], g[k]/n)
		}
	}
}

func TestReductionsGradOutputAuxInPlace(t *testing.T) {
	ctx, l := newCE(t)
	defer ctx.Close()
	defer l.Close()
	base, err := l.Compute(inputs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	none, err := l.Compute(inputs(), &Options{Reduction: None, GradOutput: []float32{1, 0, -2}, Aux: []string{"lse"}})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := l.Compute(inputs(), &Options{Reduction: Sum, NoGrads: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(none.Loss) != n || sum.Grads[0] != nil || len(none.Aux["lse"]) != n {
		t.Fatalf("shapes: loss %v, grads %v, aux %v", none.Loss, sum.Grads, none.Aux)
	}
	total := 0.0
	for i := 0; i < n; i++ {
		total += float64(none.Loss[i])
		if none.Aux["lse"][i] < none.Loss[i] {
			t.Errorf("lse[%d] = %v below the loss %v", i, none.Aux["lse"][i], none.Loss[i])
		}
		for k := 0; k < c; k++ {
			go_ := []float64{1, 0, -2}[i]
			near(t, "scaled grad", none.Grads[0][i*c+k], go_*n*float64(base.Grads[0][i*c+k]))
		}
	}
	near(t, "sum", sum.Value(), total)

	// In place: the logits slice is both the input and its gradient.
	z := append([]float32(nil), logits...)
	out := make([]float32, 1)
	if err := l.ComputeInto([]Tensor{F32(z, n, c), I64(target)}, Mean, out, [][]float32{z}, nil); err != nil {
		t.Fatal(err)
	}
	near(t, "in-place loss", out[0], float64(base.Value()))
	for k := range z {
		near(t, "in-place grad", z[k], float64(base.Grads[0][k]))
	}

	// Optional inputs: class weights of ones equal absent ones.
	w, err := l.Compute([]Tensor{F32(logits, n, c), I64(target), F32([]float32{1, 1, 1, 1}), Absent()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "weighted", w.Value(), float64(base.Value()))
}

func TestErrors(t *testing.T) {
	ctx, l := newCE(t)
	defer ctx.Close()
	_, err := ctx.NewLoss("no_such_loss")
	wantCode(t, err, ErrUnknownLoss, "no_such_loss")
	_, err = NewContext(Backend(42))
	wantCode(t, err, ErrInvalidArg, "42")
	if !BackendAvailable(BackendWGPU) {
		_, err = NewContext(BackendWGPU)
		wantCode(t, err, ErrBackendUnavailable, "")
	}
	wantCode(t, l.Set("no_such_param", 1.0), ErrUnknownParam, "no_such_param")
	wantCode(t, l.Set("label_smoothing", 1.5), ErrInvalidParam, "label_smoothing")
	wantCode(t, l.SetI64("label_smoothing", 1), ErrInvalidParam, "label_smoothing")
	wantCode(t, l.Set("label_smoothing", []int{1}), ErrInvalidParam, "unsupported Go type")
	if v, _ := l.GetF64("label_smoothing"); v != 0 {
		t.Errorf("label_smoothing changed to %v by a refused set", v)
	}
	_, err = l.GetI64("label_smoothing")
	wantCode(t, err, ErrInvalidParam, "label_smoothing")
	_, err = l.GetBool("label_smoothing")
	wantCode(t, err, ErrInvalidParam, "label_smoothing")
	_, err = l.GetEnum("nope")
	wantCode(t, err, ErrUnknownParam, "nope")

	out := []float32{-7}
	g := make([]float32, n*c)
	into := func(in []Tensor, r Reduction) error { return l.ComputeInto(in, r, out, [][]float32{g}, nil) }
	wantCode(t, into([]Tensor{F32(logits, n, c)}, Mean), ErrNullArg, "target")
	wantCode(t, into([]Tensor{F32(logits, n, c), Absent()}, Mean), ErrNullArg, "target")
	wantCode(t, into([]Tensor{F32(logits), I64(target)}, Mean), ErrShapeMismatch, "logits")
	wantCode(t, into([]Tensor{F32(logits, n, c), I64([]int64{1, 2})}, Mean), ErrShapeMismatch, "target")
	wantCode(t, into([]Tensor{F32(logits, n, c), I64(target), F32([]float32{1, 1})}, Mean), ErrShapeMismatch, "class_weights")
	wantCode(t, into([]Tensor{F32(logits, n, c), F32([]float32{2, 0, 3})}, Mean), ErrDType, "target")
	wantCode(t, into([]Tensor{I64(make([]int64, n*c), n, c), I64(target)}, Mean), ErrDType, "logits")
	wantCode(t, into([]Tensor{F32(logits, n, c), I64([]int64{2, 4, 3})}, Mean), ErrInvalidTarget, "target[1] = 4")
	wantCode(t, into([]Tensor{F32(logits, n, c), I64(target), F32([]float32{1, -1, 1, 1})}, Mean), ErrInvalidInput, "class_weights")
	wantCode(t, into(inputs(), Reduction(9)), ErrInvalidArg, "reduction")
	wantCode(t, into([]Tensor{F32(logits, 4, 4), I64(target)}, Mean), ErrShapeMismatch, "12 elements")
	wantCode(t, l.ComputeInto(inputs(), None, out, nil, nil), ErrShapeMismatch, "loss output")
	wantCode(t, l.ComputeInto(inputs(), Mean, out, nil, []float32{1, 2}), ErrShapeMismatch, "grad_output")
	wantCode(t, l.ComputeInto(inputs(), Mean, out, [][]float32{nil, make([]float32, n)}, nil), ErrInvalidArg, "not differentiable")
	wantCode(t, l.ComputeInto(inputs(), Mean, logits[2:3], nil, nil), ErrInvalidArg, "overlaps")
	wantCode(t, l.ComputeInto(inputs(), Mean, out, nil, nil, AuxOut{"nope", F32(make([]float32, n))}), ErrInvalidArg, "nope")
	_, err = l.Compute(inputs(), &Options{Aux: []string{"nope"}})
	wantCode(t, err, ErrInvalidArg, "nope")
	if out[0] != -7 || g[0] != 0 {
		t.Errorf("a failing call wrote its outputs: %v %v", out[0], g[0])
	}

	l.Close()
	l.Close()
	_, err = l.Compute(inputs(), nil)
	wantCode(t, err, ErrNullArg, "after Close")
	ctx.Close()
	_, err = ctx.NewLoss("cross_entropy")
	wantCode(t, err, ErrNullArg, "after Close")
}

// Goroutines share one loss: good and failing computes interleave, and every failure
// must carry its own message (the message is read inside the failing cgo call).
func TestConcurrentUse(t *testing.T) {
	ctx, l := newCE(t)
	defer ctx.Close()
	defer l.Close()
	if err := l.Set("label_smoothing", 0.2); err != nil {
		t.Fatal(err)
	}
	want, err := l.Compute(inputs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	workers := 4 * runtime.GOMAXPROCS(0)
	if workers < 8 {
		workers = 8
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for rep := 0; rep < 200; rep++ {
				if (w+rep)%3 == 0 {
					bad := int64(10 + w)
					_, err := l.Compute([]Tensor{F32(logits, n, c), I64([]int64{2, bad, 3})}, nil)
					var e *Error
					if !errors.As(err, &e) || e.Code != ErrInvalidTarget || !strings.Contains(e.Msg, fmt.Sprintf("target[1] = %d", bad)) {
						errs <- fmt.Errorf("worker %d: wrong error %v", w, err)
						return
					}
					continue
				}
				r, err := l.Compute(inputs(), nil)
				if err != nil {
					errs <- err
					return
				}
				if r.Value() != want.Value() || r.Grads[0][5] != want.Grads[0][5] {
					errs <- fmt.Errorf("worker %d: result differs", w)
					return
				}
				runtime.Gosched()
			}
		}(w)
	}
	// Configuration waits for running computes (no data race on the parameters).
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := 0; k < 20; k++ {
			if err := l.Set("label_smoothing", 0.2); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Losses and contexts dropped without Close are freed by their finalizers.
func TestFinalizers(t *testing.T) {
	for i := 0; i < 50; i++ {
		ctx, err := NewContext(BackendCPU)
		if err != nil {
			t.Fatal(err)
		}
		l, err := ctx.NewLoss("cross_entropy")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Compute(inputs(), nil); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.GC()
}

func TestOrderFreeConfigurationAndTypedGetters(t *testing.T) {
	ctx, err := NewContext(BackendCPU)
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	dpo, err := ctx.NewLoss("dpo")
	if err != nil {
		t.Fatal(err)
	}
	defer dpo.Close()
	if v, err := dpo.GetEnum("loss_type"); err != nil || v != "sigmoid" {
		t.Fatalf("loss_type = %q, %v", v, err)
	}
	// exo_pair needs label_smoothing > 0: the setter takes it, Check refuses the combination.
	if err := dpo.SetEnum("loss_type", "exo_pair"); err != nil {
		t.Fatal(err)
	}
	if v, _ := dpo.GetEnum("loss_type"); v != "exo_pair" {
		t.Fatalf("loss_type = %q", v)
	}
	err = dpo.Check()
	wantCode(t, err, ErrInvalidParam, "label_smoothing")
	wantCode(t, err, ErrInvalidParam, "loss_type")
	if err := dpo.SetF64("label_smoothing", 0.1); err != nil {
		t.Fatal(err)
	}
	if err := dpo.Check(); err != nil {
		t.Fatal(err)
	}
	_, err = dpo.GetEnum("beta")
	wantCode(t, err, ErrInvalidParam, "beta")

	cce, err := ctx.NewLoss("cut_cross_entropy")
	if err != nil {
		t.Fatal(err)
	}
	defer cce.Close()
	if v, err := cce.GetBool("filter_e_grad"); err != nil || !v {
		t.Fatalf("filter_e_grad = %v, %v", v, err)
	}
	if err := cce.SetBool("filter_e_grad", false); err != nil {
		t.Fatal(err)
	}
	if v, err := cce.GetBool("filter_e_grad"); err != nil || v {
		t.Fatalf("filter_e_grad = %v, %v", v, err)
	}
}
