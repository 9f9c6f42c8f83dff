//! Per-loss tests of the classification family.

mod aldr_kl;
mod amp_entropy;
mod ca_calibration;
mod categorical_value;
mod comp_sum;
mod cross_entropy;
mod dco;
mod focal;
mod golden_b;
mod harmonic;
mod helpers;
mod kd_kl;
mod ldr_kl;
mod noisefit_hybrid;
mod poly1;
mod reward_shaped_ntp;
mod smooth_adv_comp_sum;
mod spherical_z_loss;
mod symmetric_ce;

/// The ids this module's helper tests cover with the family-wide checks below.
const IDS: [&str; 10] = [
    "focal",
    "poly1",
    "comp_sum",
    "smooth_adv_comp_sum",
    "ldr_kl",
    "aldr_kl",
    "spherical_z_loss",
    "symmetric_ce",
    "noisefit_hybrid",
    "kd_kl",
];

#[test]
fn specs_validate_and_empty_batches_give_zero() {
    use std::collections::BTreeMap;

    use losskit::Reduction;
    use losskit::testing::Case;

    for id in IDS {
        for loss in helpers::param_sets(id) {
            loss.def().spec.validate().unwrap();
            let dims = BTreeMap::from([("N".to_string(), 0)]);
            let case = Case::random(&loss, &dims, 1, true);
            for red in [Reduction::Mean, Reduction::Sum] {
                let o = case.run(&loss, red, true, None).unwrap();
                assert_eq!(o.loss, vec![0.0], "{id} {}", red.name());
            }
            let o = case.run(&loss, Reduction::None, true, None).unwrap();
            assert!(o.loss.is_empty());
        }
    }
}

#[test]
fn in_place_gradients_equal_separate_ones() {
    use std::collections::BTreeMap;

    use losskit::testing::Case;
    use losskit::{Compute, Tensor};

    for id in IDS {
        for loss in helpers::param_sets(id) {
            if !loss.def().spec.in_place {
                continue;
            }
            let case = Case::random(&loss, &BTreeMap::new(), 7, true);
            for red in helpers::REDUCTIONS {
                let want = case.run(&loss, red, true, None).unwrap();
                let x0 = case.inputs[0].as_ref().unwrap();
                let mut buf = x0.f32().to_vec();
                let mut out = vec![0.0f32; want.loss.len()];
                {
                    let mut c = Compute::new(red, &mut out)
                        .input(Tensor::f32_in_place(&mut buf, &x0.shape));
                    for t in &case.inputs[1..] {
                        c.inputs.push(t.as_ref().map(|t| t.view()));
                    }
                    c = c.grad_in_place(0);
                    loss.compute(&mut c).unwrap();
                }
                assert_eq!(out, want.loss, "{id} {}", red.name());
                assert_eq!(&buf, want.grads[0].as_ref().unwrap(), "{id} {}", red.name());
            }
        }
    }
}
