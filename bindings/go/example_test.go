package losskit_test

import (
	"errors"
	"fmt"

	"losskit.dev/go/losskit"
)

// Cross-entropy of two rows over three classes with label smoothing, its gradient, and
// a refused parameter value. The printed values were checked against a float64
// computation written separately.
func Example() {
	ctx, err := losskit.NewContext(losskit.BackendCPU)
	if err != nil {
		panic(err)
	}
	defer ctx.Close()
	loss, err := ctx.NewLoss("cross_entropy")
	if err != nil {
		panic(err)
	}
	defer loss.Close()
	if err := loss.Set("label_smoothing", 0.1); err != nil {
		panic(err)
	}

	logits := []float32{2.0, 0.5, -1.0, 0.1, 0.2, 3.0} // [N=2, C=3], row-major
	target := []int64{0, 2}
	r, err := loss.Compute([]losskit.Tensor{losskit.F32(logits, 2, 3), losskit.I64(target)}, nil)
	if err != nil {
		panic(err)
	}
	fmt.Printf("loss %.4f\n", r.Value())
	fmt.Printf("dlogits row 0: %.4f %.4f %.4f\n", r.Grads[0][0], r.Grads[0][1], r.Grads[0][2])

	err = loss.Set("label_smoothing", 2.0)
	var e *losskit.Error
	fmt.Println(errors.As(err, &e), e.Code == losskit.ErrInvalidParam)
	// Output:
	// loss 0.3455
	// dlogits row 0: -0.0739 0.0710 0.0029
	// true true
}
