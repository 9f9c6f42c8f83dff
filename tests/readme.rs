//! The README's loss table is generated from the registry; this test fails when it is stale.
//! Regenerate it with `LOSSKIT_BLESS=1 cargo test --test readme`.

use std::path::PathBuf;

const START: &str = "<!-- losses:start -->\n";
const END: &str = "<!-- losses:end -->";

#[test]
fn readme_loss_table_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (a, rest) = readme
        .split_once(START)
        .expect("README lacks the losses:start marker");
    let (_, b) = rest
        .split_once(END)
        .expect("README lacks the losses:end marker");
    let ctx = losskit::Context::cpu();
    let table = losskit::registry::markdown_table(&ctx.losses());
    let fresh = format!("{a}{START}{table}{END}{b}");
    if std::env::var_os("LOSSKIT_BLESS").is_some() {
        std::fs::write(&path, fresh).unwrap();
        return;
    }
    assert!(
        fresh == readme,
        "the README's loss table is stale: run `LOSSKIT_BLESS=1 cargo test --test readme`"
    );
}
