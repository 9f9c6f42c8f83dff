//! Generates the C header with the pinned cbindgen into OUT_DIR. `tests/header.rs` checks
//! that the committed `include/losskit.h` equals it; regenerate the committed copy with
//! `LOSSKIT_BLESS=1 cargo test --test header`.

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");
    // Before 1.0 the SONAME carries the full version (no ABI promise between releases).
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,-soname,liblosskit.so.{}",
        env!("CARGO_PKG_VERSION")
    );
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    let config =
        cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("cbindgen.toml");
    match cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
    {
        Ok(b) => {
            b.write_to_file(format!("{out}/losskit.h"));
        }
        Err(e) => panic!("cbindgen failed: {e}"),
    }
}
