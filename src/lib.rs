//! # losskit
//!
//! Loss functions **and their exact gradients**, behind a stable C ABI, for training code
//! written outside Python (C, C++, Julia, Go) and for Rust.
//!
//! - Every loss is described by a [`LossSpec`] in one registry ([`registry`]); the C API,
//!   the `losskit` CLI and the test suites read it.
//! - One call computes the reduced loss and, when asked, the gradient of every
//!   differentiable input, scaled by an optional upstream gradient.
//! - The CPU path is multi-threaded over rows and deterministic.
//!
//! ```
//! use losskit::{Compute, Context, Reduction, Tensor, TensorMut};
//! let ctx = Context::cpu();
//! let mut ce = ctx.loss("cross_entropy").unwrap();
//! ce.set_f64("label_smoothing", 0.1).unwrap();
//! let logits = [2.0f32, 0.5, -1.0, 0.1, 0.2, 3.0];
//! let target = [0i64, 2];
//! let mut loss = [0.0f32];
//! let mut grad = [0.0f32; 6];
//! let mut c = Compute::new(Reduction::Mean, &mut loss)
//!     .input(Tensor::f32(&logits, &[2, 3]))
//!     .input(Tensor::i64(&target, &[2]))
//!     .grad(0, TensorMut::new(&mut grad, &[2, 3]));
//! ce.compute(&mut c).unwrap();
//! drop(c);
//! assert!(loss[0] > 0.0);
//! ```
//!
//! See the README for the C API, its conventions and the loss catalogue.

#![warn(missing_docs)]

pub mod backend;
pub mod cabi;
pub mod compute;
pub mod context;
pub mod device;
pub mod error;
pub mod exec;
pub mod ffi;
pub mod kernel_names;
pub mod losses;
pub mod params;
pub mod plugin;
pub mod reduction;
pub mod registry;
pub mod rng;
pub mod spec;
pub mod tensor;
pub mod testing;
pub mod text;
pub mod version;

pub use backend::BackendKind;
pub use compute::Compute;
pub use context::{Context, Loss, backend_available};
pub use error::{ErrorKind, LkError, Result};
pub use exec::def::{LossDef, LossImpl, ParamSet};
pub use params::{ParamKind, ParamSpec, ParamValue, Params};
pub use reduction::Reduction;
pub use spec::{AuxSpec, Domain, InputSpec, LossSpec};
pub use tensor::{DType, Data, Grad, Tensor, TensorMut};
pub use text::Text;
