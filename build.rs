//! Generates the two C headers into OUT_DIR with the pinned cbindgen: `losskit.h`, the C
//! API (from src/ffi/), and `losskit_plugin.h`, the plugin ABI (from src/plugin/abi.rs).
//! `tests/header.rs` checks that the committed copies in include/ equal them; regenerate
//! those with `LOSSKIT_BLESS=1 cargo test --test header`.
//!
//! cbindgen parses only those files, so a constant elsewhere in the crate never reaches a
//! header. It emits items grouped by kind (constants, types, functions); this script splits
//! its output into items, names each one and writes them into the sections of the layout
//! tables below, a heading comment over each section, after a preamble. An item that no
//! section claims, or that lacks the `lk_`/`LK_` prefix, fails the build. Doc comments
//! become plain text on the way: a rustdoc heading (`# Safety`) becomes a "Safety:" line,
//! backticks and intra-doc link brackets are dropped.

use std::collections::HashSet;
use std::fmt::Write as _;

/// A run of items under one heading. `items` are names, or prefixes ending in `*`; an item
/// goes to the most specific pattern that matches it (a name beats a prefix, a longer
/// prefix a shorter one) and is written in pattern order, then in cbindgen's order.
struct Part {
    /// Sub-heading ("" for the items that open the section).
    title: &'static str,
    intro: &'static str,
    items: &'static [&'static str],
}

struct Section {
    title: &'static str,
    intro: &'static str,
    parts: &'static [Part],
}

struct Layout {
    file: &'static str,
    guard: &'static str,
    includes: &'static [&'static str],
    sections: &'static [Section],
}

const fn part(title: &'static str, intro: &'static str, items: &'static [&'static str]) -> Part {
    Part {
        title,
        intro,
        items,
    }
}

const CORE: Layout = Layout {
    file: "losskit.h",
    guard: "LOSSKIT_H",
    includes: &["<stdbool.h>", "<stddef.h>", "<stdint.h>"],
    sections: &[
        Section {
            title: "Version",
            intro: "The version this header describes (macros) and the version of the library loaded at\n\
                    run time (functions): compare them to catch a header/library mismatch.",
            parts: &[part(
                "",
                "",
                &[
                    "LK_VERSION_*",
                    "LK_ABI_VERSION",
                    "lk_version_*",
                    "lk_abi_version",
                ],
            )],
        },
        Section {
            title: "Status codes and error messages",
            intro: "Every fallible function returns an lk_status (LK_OK is 0). After a failure,\n\
                    lk_last_error_message() names the loss, input or parameter and the values.",
            parts: &[part(
                "",
                "",
                &["lk_status", "lk_status_str", "lk_last_error_*"],
            )],
        },
        Section {
            title: "Contexts",
            intro: "A context is a backend (CPU or GPU) and the losses it knows: the builtins and the\n\
                    plugins loaded into it. Create one per process or per device and share it.",
            parts: &[
                part(
                    "",
                    "",
                    &[
                        "lk_backend",
                        "lk_context",
                        "lk_context_create",
                        "lk_context_free",
                        "lk_backend_*",
                        "lk_context_*",
                    ],
                ),
                part(
                    "Loading plugins",
                    "A plugin adds losses to one context. Writing a plugin: losskit_plugin.h.",
                    &["lk_plugin_load"],
                ),
            ],
        },
        Section {
            title: "Tensors",
            intro: "Inputs and outputs cross the ABI as borrowed views of contiguous row-major memory,\n\
                    laid out as DLPack's DLTensor.",
            parts: &[part(
                "",
                "",
                &[
                    "LK_DTYPE_*",
                    "lk_dtype",
                    "LK_DEVICE_*",
                    "lk_device",
                    "LK_MAX_NDIM",
                    "lk_tensor",
                ],
            )],
        },
        Section {
            title: "Losses",
            intro: "A loss is created by id from a context, configured through its named parameters, then\n\
                    computed any number of times, from many threads at once.",
            parts: &[
                part(
                    "Creating a loss",
                    "",
                    &["lk_loss", "lk_loss_create", "lk_loss_free", "lk_loss_id"],
                ),
                part(
                    "Configuring a loss",
                    "Each value is checked against its own range when it is set; checks that involve\n\
                     several parameters run when the loss is computed.",
                    &["lk_loss_set_*", "lk_loss_get_*", "lk_loss_*"],
                ),
                part(
                    "Computing a loss",
                    "",
                    &["lk_reduction", "lk_aux_output", "lk_loss_compute*"],
                ),
            ],
        },
        Section {
            title: "Introspection",
            intro: "The catalogue of a context: every loss with its inputs, parameters (type, default,\n\
                    range) and auxiliary outputs, and the plugins loaded.",
            parts: &[
                part(
                    "",
                    "",
                    &[
                        "lk_param_type",
                        "lk_loss_info",
                        "lk_input_info",
                        "lk_param_info",
                        "lk_aux_info",
                        "lk_loss_count",
                        "lk_loss_id_at",
                        "lk_loss_describe*",
                        "lk_loss_param_*",
                    ],
                ),
                part("Loaded plugins", "", &["lk_plugin_info", "lk_plugin_*"]),
            ],
        },
        Section {
            title: "Device buffers",
            intro: "Memory on a GPU context's device, passed to lk_loss_compute in place of host memory\n\
                    so that a training loop keeps its tensors on the GPU.",
            parts: &[part("", "", &["lk_buffer", "lk_buffer_*"])],
        },
    ],
};

const PLUGIN: Layout = Layout {
    file: "losskit_plugin.h",
    guard: "LOSSKIT_PLUGIN_H",
    includes: &["\"losskit.h\""],
    sections: &[
        Section {
            title: "ABI version",
            intro: "",
            parts: &[part("", "", &["LK_PLUGIN_ABI_VERSION"])],
        },
        Section {
            title: "Host services",
            intro: "What the host hands to the entry point: error reporting and logging.",
            parts: &[part(
                "",
                "",
                &["lk_error_sink", "LK_LOG_*", "lk_host_api_v*"],
            )],
        },
        Section {
            title: "Inputs, parameters and auxiliary outputs",
            intro: "The spec of a plugin loss, the same data a builtin declares.",
            parts: &[part(
                "",
                "",
                &[
                    "LK_DOMAIN_*",
                    "lk_plugin_input_v*",
                    "lk_plugin_param_v*",
                    "lk_plugin_aux_v*",
                ],
            )],
        },
        Section {
            title: "Callbacks",
            intro: "The functions a plugin loss implements, and what they receive.",
            parts: &[part(
                "",
                "",
                &[
                    "lk_param_value",
                    "lk_plugin_call_v*",
                    "lk_plugin_create_fn",
                    "lk_plugin_destroy_fn",
                    "lk_plugin_compute_fn",
                ],
            )],
        },
        Section {
            title: "The loss table",
            intro: "",
            parts: &[part("", "", &["lk_plugin_loss_v*"])],
        },
        Section {
            title: "The plugin descriptor and the entry point",
            intro: "",
            parts: &[part("", "", &["lk_plugin_v*", "lk_plugin_init_fn"])],
        },
    ],
};

const CORE_OVERVIEW: &str = "\
losskit computes a loss and, in the same call, the gradient of the reduced loss with
respect to every differentiable input, on the CPU or on a GPU (wgpu). A program creates a
context (a backend and the losses it knows), creates a loss by id, sets its parameters and
computes it on borrowed tensor views; the introspection functions describe every loss at
run time. Plugins add losses from shared objects; writing one needs losskit_plugin.h.";

const CORE_CONVENTIONS: &str = "\
Conventions:
 1. Every object is created by lk_X_create (or an out-param) and destroyed exactly once
    by lk_X_free; lk_X_free(NULL) is a no-op.
 2. Inputs are const pointers or values; outputs are non-const and come last.
    Out-params are written only when the function returns LK_OK.
 3. Tensor views and strings passed in are borrowed for the duration of the call only;
    losskit never keeps a pointer after returning. Output buffers belong to the caller.
 4. Strings returned are static (lk_status_str, lk_version_string), live as long as the
    registry entry (loss ids and spec texts), or until the next lk_ call on the same
    thread (lk_last_error_message).
 5. Threads: an lk_context may be shared by threads. An lk_loss may move between threads
    but is configured by one thread at a time; functions taking a const lk_loss *
    (lk_loss_compute) may run concurrently on the same loss.
 6. Errors: every fallible function returns an lk_status; lk_last_error_message() then
    gives a thread-local message naming the loss, input or parameter and the values.
    Read it on the same thread before the next lk_ call (Go: inside the same cgo call).
 7. After LK_ERR_PANIC the handle involved is poisoned; only lk_X_free is valid on it.
 8. Pointer arguments documented as \"NULL or live\" may be NULL (the function then fails
    with LK_ERR_NULL_ARG or returns its documented default); any other pointer must be
    valid for the call, as each function's Safety paragraph states.";

const EXAMPLE_INTRO: &str = "\
Example (tests/c/smoke.c, compiled and run by the tests): cross-entropy with label
smoothing over two rows of three classes, and the gradient of the mean loss.";

const PLUGIN_OVERVIEW: &str = "\
A plugin is a shared object that exports one entry point (lk_plugin_init_fn). The host
calls it with its table of services (lk_host_api_v1); the plugin returns a static
descriptor (lk_plugin_v1) whose losses (lk_plugin_loss_v1) carry the same spec data as a
builtin (inputs, parameters, auxiliary outputs), C callbacks to create a state, compute
and destroy it, and optionally WGSL source so that the loss also runs on the GPU.

A plugin includes this header, which includes losskit.h for the tensor, dtype, status and
parameter-type definitions, but does not link liblosskit: it reaches the host only through
lk_host_api_v1. Loading and listing plugins is the host's side, in losskit.h
(lk_plugin_load, lk_plugin_count, lk_plugin_describe). The guide, with a complete plugin,
is plugins/README.md; the examples are plugins/example_c/asl.c and plugins/example_rust/.

Versioning: every table starts with abi_version and/or struct_size and only ever grows at
its end. The host accepts abi_version == LK_PLUGIN_ABI_VERSION and a struct_size at least
the size of the first version of the table, and reads a field added later only when
struct_size covers it. The element types of the arrays (lk_plugin_input_v1,
lk_plugin_param_v1, lk_plugin_aux_v1) are frozen; a later version adds new arrays at the
end of lk_plugin_loss_v1 instead of growing them.";

/// The sources of losskit.h: the C API and the types and versions it shares with the
/// plugin ABI.
const CORE_SRCS: &[&str] = &["src/ffi/mod.rs", "src/cabi.rs", "src/version.rs"];

fn main() {
    for path in [
        "src/ffi",
        "src/cabi.rs",
        "src/version.rs",
        "src/plugin/abi.rs",
        "cbindgen.toml",
        "build.rs",
        "tests/c/smoke.c",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
    // Before 1.0 the SONAME carries the full version (no ABI promise between releases).
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,-soname,liblosskit.so.{}",
        env!("CARGO_PKG_VERSION")
    );
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    let config =
        cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("cbindgen.toml");

    let core = split_items(&run_cbindgen(&config, &dir, CORE_SRCS));
    let all = split_items(&run_cbindgen(
        &config,
        &dir,
        &[CORE_SRCS, &["src/plugin/abi.rs"]].concat(),
    ));
    let core_names: HashSet<&str> = core.iter().map(|i| i.name.as_str()).collect();
    let plugin: Vec<Item> = all
        .iter()
        .filter(|i| !core_names.contains(i.name.as_str()))
        .cloned()
        .collect();

    let smoke = std::fs::read_to_string(format!("{dir}/tests/c/smoke.c")).expect("tests/c/smoke.c");
    assert!(
        !smoke.contains("/*") && !smoke.contains("*/"),
        "tests/c/smoke.c is shown inside the header's first comment: use // comments in it"
    );
    let mut example = String::new();
    for line in smoke.trim_end().lines() {
        example.push_str(if line.is_empty() { "" } else { "    " });
        example.push_str(line);
        example.push('\n');
    }
    let core_intro = [
        CORE_OVERVIEW.to_string(),
        contents(
            &CORE,
            "The plugin ABI, for writing a plugin, is in losskit_plugin.h.",
        ),
        CORE_CONVENTIONS.to_string(),
        format!("{EXAMPLE_INTRO}\n\n{}", example.trim_end()),
    ];
    let plugin_intro = [PLUGIN_OVERVIEW.to_string(), contents(&PLUGIN, "")];
    std::fs::write(
        format!("{out}/losskit.h"),
        render(
            &CORE,
            "loss functions and their gradients behind a stable C ABI",
            "src/ffi/",
            &core_intro,
            &core,
        ),
    )
    .expect("write losskit.h");
    std::fs::write(
        format!("{out}/losskit_plugin.h"),
        render(
            &PLUGIN,
            "the plugin ABI, version 1, for writing a losskit plugin",
            "src/plugin/abi.rs",
            &plugin_intro,
            &plugin,
        ),
    )
    .expect("write losskit_plugin.h");
}

fn run_cbindgen(config: &cbindgen::Config, dir: &str, srcs: &[&str]) -> String {
    let mut builder = cbindgen::Builder::new().with_config(config.clone());
    for src in srcs {
        builder = builder.with_src(format!("{dir}/{src}"));
    }
    let bindings = match builder.generate() {
        Ok(b) => b,
        Err(e) => panic!("cbindgen failed on {srcs:?}: {e}"),
    };
    let mut text = Vec::new();
    bindings.write(&mut text);
    String::from_utf8(text).expect("cbindgen wrote UTF-8")
}

/// One declaration as cbindgen wrote it: its doc comment and the declaration.
#[derive(Clone)]
struct Item {
    name: String,
    text: String,
}

const EXTERN_C_OPEN: &str = "#ifdef __cplusplus\nextern \"C\" {\n#endif // __cplusplus\n";
const EXTERN_C_CLOSE: &str = "#ifdef __cplusplus\n}  // extern \"C\"\n#endif  // __cplusplus\n";

/// cbindgen's output (no header, guard or includes) as items: they are separated by blank
/// lines, and doc comments never hold one (an empty doc line is written as " *").
fn split_items(raw: &str) -> Vec<Item> {
    let body = raw
        .replacen(EXTERN_C_OPEN, "", 1)
        .replacen(EXTERN_C_CLOSE, "", 1);
    assert!(
        !body.contains("extern \"C\""),
        "cbindgen's extern \"C\" block changed shape:\n{raw}"
    );
    body.split("\n\n")
        .map(|chunk| chunk.trim_matches('\n'))
        .filter(|chunk| !chunk.is_empty())
        .map(|chunk| Item {
            name: declared_name(chunk),
            text: chunk
                .lines()
                .map(plain_comment)
                .collect::<Vec<_>>()
                .join("\n"),
        })
        .collect()
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn first_ident(s: &str) -> &str {
    let s = s.trim_start();
    let end = s.find(|c| !is_ident_char(c)).unwrap_or(s.len());
    &s[..end]
}

/// The name an item declares: a macro, a struct/enum tag, a typedef name or a function.
fn declared_name(chunk: &str) -> String {
    let decl = match chunk.find("\n */\n") {
        Some(end) if chunk.starts_with("/**") => &chunk[end + 5..],
        _ => chunk,
    };
    let name = if let Some(rest) = decl.strip_prefix("#define ") {
        first_ident(rest)
    } else if let Some(rest) = decl.strip_prefix("enum ") {
        first_ident(rest)
    } else if let Some(rest) = decl.strip_prefix("typedef struct ") {
        first_ident(rest)
    } else if let Some(rest) = decl.strip_prefix("typedef ") {
        match rest.find("(*") {
            Some(k) => first_ident(&rest[k + 2..]),
            None => {
                let head = rest.trim_end().trim_end_matches(';');
                let start = head.rfind(|c| !is_ident_char(c)).map_or(0, |k| k + 1);
                &head[start..]
            }
        }
    } else {
        let head = &decl[..decl.find('(').unwrap_or(0)];
        let start = head.rfind(|c| !is_ident_char(c)).map_or(0, |k| k + 1);
        &head[start..]
    };
    assert!(!name.is_empty(), "cannot name this cbindgen item:\n{chunk}");
    name.to_string()
}

/// A line of cbindgen's output with its doc-comment text turned from rustdoc into plain
/// text; declaration lines pass unchanged.
fn plain_comment(line: &str) -> String {
    let t = line.trim_start();
    let indent = &line[..line.len() - t.len()];
    let Some(text) = t.strip_prefix("* ").or(t.strip_prefix("/** ")) else {
        return line.to_string();
    };
    let lead = &t[..t.len() - text.len()];
    let heading = text.trim_start_matches('#');
    let text = if heading.len() < text.len() && heading.starts_with(' ') {
        format!("{}:", heading.trim())
    } else {
        text.to_string()
    };
    let mut out = String::new();
    let mut rest = text.as_str();
    // [`name`] and [`name`](path) intra-doc links: keep the name.
    while let Some(k) = rest.find("[`") {
        let Some(close) = rest[k..].find("`]") else {
            break;
        };
        out.push_str(&rest[..k]);
        out.push_str(&rest[k + 2..k + close]);
        rest = &rest[k + close + 2..];
        if rest.starts_with('(') {
            rest = &rest[rest.find(')').map_or(0, |e| e + 1)..];
        }
    }
    out.push_str(rest);
    format!("{indent}{lead}{}", out.replace('`', ""))
}

/// Where an item goes: (section, part, pattern) of the most specific matching pattern.
fn place(layout: &Layout, name: &str) -> (usize, usize, usize) {
    let mut best: Option<((usize, usize, usize), usize)> = None;
    for (s, section) in layout.sections.iter().enumerate() {
        for (p, part) in section.parts.iter().enumerate() {
            for (k, pattern) in part.items.iter().enumerate() {
                let rank = match pattern.strip_suffix('*') {
                    Some(prefix) if name.starts_with(prefix) => prefix.len(),
                    None if *pattern == name => usize::MAX,
                    _ => continue,
                };
                match best {
                    Some((_, r)) if r > rank => {}
                    Some((at, r)) if r == rank => {
                        panic!(
                            "{name}: two patterns of the {} layout match it ({at:?}, {pattern})",
                            layout.file
                        )
                    }
                    _ => best = Some(((s, p, k), rank)),
                }
            }
        }
    }
    match best {
        Some((at, _)) => at,
        None => panic!(
            "{name} has no section in {}: add it to a section of the layout in build.rs",
            layout.file
        ),
    }
}

fn contents(layout: &Layout, note: &str) -> String {
    let mut s = String::from("Contents:\n");
    for (k, section) in layout.sections.iter().enumerate() {
        let _ = writeln!(s, " {}. {}", k + 1, section.title);
        let titled = section.parts.iter().filter(|p| !p.title.is_empty());
        for (n, part) in titled.enumerate() {
            let _ = writeln!(s, "    {}.{} {}", k + 1, n + 1, part.title);
        }
    }
    s.push_str(note);
    s.trim_end().to_string()
}

/// `text` as the lines of a block comment (" * line", " *" for an empty line).
fn comment_lines(text: &str) -> String {
    let mut s = String::new();
    for line in text.lines() {
        s.push_str(if line.is_empty() { " *" } else { " * " });
        s.push_str(line);
        s.push('\n');
    }
    s
}

fn heading(rule: char, title: &str, intro: &str) -> String {
    let bar: String = std::iter::repeat_n(rule, 86).collect();
    let mut s = format!("/* {bar}\n * {title}\n");
    if !intro.is_empty() {
        s.push_str(&comment_lines(intro));
    }
    let _ = writeln!(s, " * {bar} */");
    s
}

fn render(layout: &Layout, what: &str, from: &str, intro: &[String], items: &[Item]) -> String {
    let mut placed: Vec<((usize, usize, usize), &Item)> = Vec::new();
    for item in items {
        assert!(
            item.name.starts_with("lk_") || item.name.starts_with("LK_"),
            "{} would declare {}: every identifier of the C headers starts with lk_ or LK_",
            layout.file,
            item.name
        );
        placed.push((place(layout, &item.name), item));
    }
    // A stable sort keeps cbindgen's order among the items of one pattern.
    placed.sort_by_key(|(at, _)| *at);

    let mut h = format!("/*\n * {}: {what}.\n *\n", layout.file);
    h.push_str(&comment_lines(&format!(
        "GENERATED from {from} by build.rs with the cbindgen pinned in Cargo.toml.\n\
         Never edit by hand: regenerate with LOSSKIT_BLESS=1 cargo test --test header."
    )));
    for block in intro {
        h.push_str(" *\n");
        h.push_str(&comment_lines(block));
    }
    h.push_str(" */\n");
    let _ = write!(h, "#ifndef {0}\n#define {0}\n\n", layout.guard);
    for inc in layout.includes {
        let _ = writeln!(h, "#include {inc}");
    }
    h.push_str("\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n");

    let mut at_section = usize::MAX;
    let mut at_part = usize::MAX;
    for ((s, p, _), item) in placed {
        let section = &layout.sections[s];
        if s != at_section {
            let title = format!("{}. {}", s + 1, section.title);
            h.push('\n');
            h.push_str(&heading('=', &title, section.intro));
            at_section = s;
            at_part = usize::MAX;
        }
        if p != at_part {
            let part = &section.parts[p];
            if !part.title.is_empty() {
                let number = section.parts[..=p]
                    .iter()
                    .filter(|q| !q.title.is_empty())
                    .count();
                let title = format!("{}.{number} {}", s + 1, part.title);
                h.push('\n');
                h.push_str(&heading('-', &title, part.intro));
            }
            at_part = p;
        }
        h.push('\n');
        h.push_str(&item.text);
        h.push('\n');
    }
    let _ = write!(
        h,
        "\n#ifdef __cplusplus\n}}  /* extern \"C\" */\n#endif\n\n#endif  /* {} */\n",
        layout.guard
    );
    h
}
