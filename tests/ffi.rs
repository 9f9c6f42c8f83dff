//! The C ABI exercised from Rust: NULL handling, out-params untouched on error, in-place and
//! strided views, overlap refusal, status texts and the thread-local message.

use std::ffi::{CStr, CString, c_void};
use std::ptr;

use losskit::ffi::context::*;
use losskit::ffi::last_error::*;
use losskit::ffi::loss::*;
use losskit::ffi::status::*;
use losskit::ffi::tensor::*;

fn t(data: *mut c_void, shape: &[i64], dtype: lk_dtype) -> lk_tensor {
    lk_tensor {
        data,
        device: lk_device {
            device_type: LK_DEVICE_CPU,
            device_id: 0,
        },
        ndim: shape.len() as i32,
        dtype,
        shape: shape.as_ptr(),
        strides: ptr::null(),
        byte_offset: 0,
    }
}

const F32: lk_dtype = lk_dtype {
    code: LK_DTYPE_CODE_FLOAT,
    bits: 32,
    lanes: 1,
};
const I64: lk_dtype = lk_dtype {
    code: LK_DTYPE_CODE_INT,
    bits: 64,
    lanes: 1,
};

fn msg() -> String {
    let p = lk_last_error_message();
    assert!(!p.is_null(), "no message");
    // SAFETY: non-NULL, NUL-terminated, valid until the next call on this thread.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

struct Fixture {
    ctx: *mut lk_context,
    ce: *mut lk_loss,
}

impl Fixture {
    fn new() -> Self {
        let mut ctx = ptr::null_mut();
        let mut ce = ptr::null_mut();
        let id = CString::new("cross_entropy").unwrap();
        // SAFETY: valid out-pointers and C strings.
        unsafe {
            assert_eq!(lk_context_create(1, &mut ctx), lk_status::LK_OK);
            assert_eq!(lk_loss_create(ctx, id.as_ptr(), &mut ce), lk_status::LK_OK);
        }
        Fixture { ctx, ce }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // SAFETY: created in new(), freed once.
        unsafe {
            lk_loss_free(self.ce);
            lk_context_free(self.ctx);
        }
    }
}

#[test]
fn out_params_are_untouched_on_error() {
    let f = Fixture::new();
    let sentinel = 0x1234usize as *mut lk_loss;
    let mut out = sentinel;
    let bad = CString::new("nope").unwrap();
    // SAFETY: valid pointers.
    let s = unsafe { lk_loss_create(f.ctx, bad.as_ptr(), &mut out) };
    assert_eq!(s, lk_status::LK_ERR_UNKNOWN_LOSS);
    assert_eq!(out, sentinel);
    assert!(msg().contains("nope"));
    let mut ctx_out = 0x99usize as *mut lk_context;
    // SAFETY: valid out-pointer.
    let s = unsafe { lk_context_create(-3, &mut ctx_out) };
    assert_eq!(s, lk_status::LK_ERR_INVALID_ARG);
    assert_eq!(ctx_out as usize, 0x99);
}

#[test]
fn success_leaves_the_last_message_alone_and_clear_forgets_it() {
    let f = Fixture::new();
    let name = CString::new("bogus").unwrap();
    // SAFETY: valid handle and string.
    let s = unsafe { lk_loss_set_f64(f.ce, name.as_ptr(), 1.0) };
    assert_eq!(s, lk_status::LK_ERR_UNKNOWN_PARAM);
    let m = msg();
    let ls = CString::new("label_smoothing").unwrap();
    // SAFETY: valid handle and string.
    let s = unsafe { lk_loss_set_f64(f.ce, ls.as_ptr(), 0.2) };
    assert_eq!(s, lk_status::LK_OK);
    assert_eq!(msg(), m, "a successful call changed the message");
    lk_last_error_clear();
    assert!(lk_last_error_message().is_null());
    // Messages are per thread.
    std::thread::spawn(|| assert!(lk_last_error_message().is_null()))
        .join()
        .unwrap();
}

#[test]
fn status_text_for_any_integer() {
    for code in [-1, 12, 99, 150, 299, 1000, i32::MIN, i32::MAX] {
        // SAFETY: static string.
        let s = unsafe { CStr::from_ptr(lk_status_str(code)) };
        assert_eq!(s.to_str().unwrap(), "unknown status");
    }
    // SAFETY: static string.
    let s = unsafe { CStr::from_ptr(lk_status_str(8)) };
    assert_eq!(s.to_str().unwrap(), "invalid target");
}

fn compute(
    f: &Fixture,
    inputs: &[lk_tensor],
    red: i32,
    out: &lk_tensor,
    grads: &[lk_tensor],
) -> lk_status {
    // SAFETY: every view points into live buffers of the caller.
    unsafe {
        lk_loss_compute(
            f.ce,
            inputs.as_ptr(),
            inputs.len(),
            red,
            ptr::null(),
            out,
            if grads.is_empty() {
                ptr::null()
            } else {
                grads.as_ptr()
            },
            grads.len(),
            ptr::null(),
            0,
        )
    }
}

#[test]
fn in_place_strided_and_dlpack_views() {
    let f = Fixture::new();
    let (n, c, stride) = (3usize, 4usize, 6usize);
    let x: Vec<f32> = (0..n * c).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
    let mut y = [1i64, 3, 0];
    let sx = [n as i64, c as i64];
    let sy = [n as i64];
    let mut loss_a = 0.0f32;
    let mut g = vec![0.0f32; n * c];
    let mut xa = x.clone();
    let out_a = t((&mut loss_a as *mut f32).cast(), &[], F32);
    let ins = [
        t(xa.as_mut_ptr().cast(), &sx, F32),
        t(y.as_mut_ptr().cast(), &sy, I64),
    ];
    let gs = [t(g.as_mut_ptr().cast(), &sx, F32)];
    assert_eq!(compute(&f, &ins, 1, &out_a, &gs), lk_status::LK_OK);

    // In place: the gradient view is the logits view.
    let mut loss_b = 0.0f32;
    let out_b = t((&mut loss_b as *mut f32).cast(), &[1], F32);
    let gs_in_place = [ins[0]];
    assert_eq!(compute(&f, &ins, 1, &out_b, &gs_in_place), lk_status::LK_OK);
    assert_eq!(loss_a, loss_b);
    assert_eq!(xa, g);

    // Strided rows (a wider buffer) with a byte offset, DLPack style.
    let mut wide = vec![0.0f32; 1 + n * stride];
    for i in 0..n {
        wide[1 + i * stride..1 + i * stride + c].copy_from_slice(&x[i * c..(i + 1) * c]);
    }
    let strides = [stride as i64, 1];
    let mut xs = t(wide.as_mut_ptr().cast(), &sx, F32);
    xs.strides = strides.as_ptr();
    xs.byte_offset = 4;
    let mut loss_c = 0.0f32;
    let out_c = t((&mut loss_c as *mut f32).cast(), &[], F32);
    assert_eq!(compute(&f, &[xs, ins[1]], 1, &out_c, &[]), lk_status::LK_OK);
    assert_eq!(loss_c, loss_a);

    // A misaligned byte offset is refused.
    xs.byte_offset = 2;
    assert_eq!(
        compute(&f, &[xs, ins[1]], 1, &out_c, &[]),
        lk_status::LK_ERR_INVALID_ARG
    );
    assert!(msg().contains("aligned"));
}

#[test]
fn outputs_may_not_alias_other_buffers() {
    let f = Fixture::new();
    let mut x = vec![0.5f32; 8];
    let mut y = [0i64, 1];
    let sx = [2i64, 4];
    let sy = [2i64];
    let ins = [
        t(x.as_mut_ptr().cast(), &sx, F32),
        t(y.as_mut_ptr().cast(), &sy, I64),
    ];
    // The loss output inside the logits.
    let out = t(x.as_mut_ptr().cast(), &[], F32);
    assert_eq!(
        compute(&f, &ins, 1, &out, &[]),
        lk_status::LK_ERR_INVALID_ARG
    );
    assert!(msg().contains("overlaps"), "{}", msg());
    // A gradient that covers the target buffer.
    let mut l = 0.0f32;
    let out = t((&mut l as *mut f32).cast(), &[], F32);
    let g = [t(y.as_mut_ptr().cast(), &[2, 1], F32)];
    assert_ne!(compute(&f, &ins, 1, &out, &g), lk_status::LK_OK);
    assert_eq!(x, vec![0.5f32; 8], "nothing is written on error");
}

#[test]
fn null_handles_are_refused_or_ignored() {
    // SAFETY: NULL is allowed everywhere here.
    unsafe {
        lk_loss_free(ptr::null_mut());
        lk_context_free(ptr::null_mut());
        assert_eq!(
            lk_loss_compute(
                ptr::null(),
                ptr::null(),
                0,
                1,
                ptr::null(),
                ptr::null(),
                ptr::null(),
                0,
                ptr::null(),
                0
            ),
            lk_status::LK_ERR_NULL_ARG
        );
        assert!(lk_loss_id(ptr::null()).is_null());
        assert_eq!(lk_context_backend(ptr::null()), -1);
        assert_eq!(losskit::ffi::introspect::lk_loss_count(ptr::null()), 0);
    }
    assert!(lk_backend_available(1));
    assert!(!lk_backend_available(77));
}
