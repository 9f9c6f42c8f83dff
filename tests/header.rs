//! The C headers, `include/losskit.h` (the C API) and `include/losskit_plugin.h` (the plugin
//! ABI), must equal what build.rs generates now; every identifier they declare must carry
//! the `lk_`/`LK_` prefix; they read as a manual (sections in order, plain-text comments,
//! the smoke example in the overview); and every `lk_*` function they declare must be
//! exported by the library, and the other way round.
//! Regenerate the committed headers with `LOSSKIT_BLESS=1 cargo test --test header`.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use losskit::ffi::{GENERATED_HEADER, GENERATED_PLUGIN_HEADER};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Both headers: (file name, what build.rs generates).
const HEADERS: [(&str, &str); 2] = [
    ("losskit.h", GENERATED_HEADER),
    ("losskit_plugin.h", GENERATED_PLUGIN_HEADER),
];

#[test]
fn committed_header_is_current() {
    let bless = std::env::var_os("LOSSKIT_BLESS").is_some();
    for (file, fresh) in HEADERS {
        let path = root().join("include").join(file);
        if bless {
            std::fs::write(&path, fresh).unwrap_or_else(|e| panic!("write include/{file}: {e}"));
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "include/{file} is stale: regenerate it with `LOSSKIT_BLESS=1 cargo test --test header`"
        );
    }
}

#[test]
fn header_parses_no_mangle_exports() {
    // The pinned cbindgen must understand `#[unsafe(no_mangle)]`: the exports are there.
    let h = GENERATED_HEADER;
    for f in [
        "lk_context_create",
        "lk_loss_create",
        "lk_loss_compute",
        "lk_last_error_message",
        "lk_status_str",
        "lk_version_number",
    ] {
        assert!(h.contains(&format!("{f}(")), "{f} missing from the header");
    }
}

#[test]
fn version_macros_match_cargo() {
    let h = GENERATED_HEADER;
    for (name, v) in [
        ("LK_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("LK_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("LK_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        assert!(
            h.contains(&format!("#define {name} {v}\n")),
            "{name} in the header differs from Cargo.toml ({v})"
        );
    }
}

#[test]
fn every_declared_function_is_exported_by_the_cdylib() {
    let core = declarations(GENERATED_HEADER);
    let plugin = declarations(GENERATED_PLUGIN_HEADER);
    assert!(
        plugin.functions.is_empty(),
        "losskit_plugin.h declares functions {:?}: a plugin does not link liblosskit, it \
         reaches the host through lk_host_api_v1",
        plugin.functions
    );
    let declared: Vec<String> = core.functions.into_iter().collect();
    assert!(
        declared.len() > 20,
        "parsed only {} declarations",
        declared.len()
    );
    let lib = common::cdylib_dir().join("liblosskit.so");
    let Ok(out) = std::process::Command::new("nm")
        .arg("-D")
        .arg("--defined-only")
        .arg(&lib)
        .output()
    else {
        eprintln!("skipped: nm not available");
        return;
    };
    if !out.status.success() {
        eprintln!("skipped: {} not built", lib.display());
        return;
    }
    let syms = String::from_utf8_lossy(&out.stdout);
    let exported: Vec<&str> = syms
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|s| s.starts_with("lk_"))
        .collect();
    for d in &declared {
        assert!(
            exported.contains(&d.as_str()),
            "{d} is declared but not exported"
        );
    }
    for e in &exported {
        assert!(
            declared.iter().any(|d| d == e),
            "{e} is exported but not declared"
        );
    }
}

// ---- every identifier a header declares ----

/// The identifiers a header declares at file scope, by kind (struct fields and parameter
/// names are not declarations of the header's namespace and are left out).
#[derive(Default, Debug)]
struct Declarations {
    /// `#define` names, the include guard first.
    macros: Vec<String>,
    /// struct / enum / union tags.
    tags: BTreeSet<String>,
    typedefs: BTreeSet<String>,
    enum_constants: BTreeSet<String>,
    functions: BTreeSet<String>,
    /// Objects declared at file scope (`extern int x;`).
    variables: BTreeSet<String>,
}

impl Declarations {
    fn all(&self) -> impl Iterator<Item = (&'static str, &String)> {
        let kind = |k: &'static str| move |n| (k, n);
        self.macros
            .iter()
            .map(kind("macro"))
            .chain(self.tags.iter().map(kind("tag")))
            .chain(self.typedefs.iter().map(kind("typedef")))
            .chain(self.enum_constants.iter().map(kind("enum constant")))
            .chain(self.functions.iter().map(kind("function")))
            .chain(self.variables.iter().map(kind("variable")))
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Punct(char),
    /// A string or character literal (`extern "C"`).
    Lit,
    Number,
}

/// Comments removed (block and line), string literals kept as such.
fn strip_comments(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"/*") {
            let end = src[i + 2..].find("*/").expect("unterminated comment") + i + 4;
            // Keep line structure for the preprocessor pass.
            out.extend(src[i..end].chars().filter(|&c| c == '\n'));
            out.push(' ');
            i = end;
        } else if b[i..].starts_with(b"//") {
            i += src[i..].find('\n').unwrap_or(src.len() - i);
        } else if b[i] == b'"' || b[i] == b'\'' {
            let q = b[i];
            let mut j = i + 1;
            while j < b.len() && b[j] != q {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            out.push_str(&src[i..=j.min(b.len() - 1)]);
            i = j + 1;
        } else {
            let c = src[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn tokenize(src: &str) -> Vec<Tok> {
    let mut toks = Vec::new();
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            toks.push(Tok::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            toks.push(Tok::Number);
        } else if c == '"' || c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            toks.push(Tok::Lit);
        } else {
            toks.push(Tok::Punct(c));
            i += 1;
        }
    }
    toks
}

/// Every identifier `header` declares: a small C reader that knows what the generated
/// headers (and any C header in their style) contain. Preprocessor conditionals are read
/// in all their branches, so a name declared only for C++ or only for C23 counts too.
fn declarations(header: &str) -> Declarations {
    let mut d = Declarations::default();
    let text = strip_comments(header);
    let mut code = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let mut line = line.to_string();
        while line.ends_with('\\') {
            line.pop();
            line.push_str(lines.next().unwrap_or(""));
        }
        let t = line.trim_start();
        if let Some(directive) = t.strip_prefix('#') {
            let mut words = directive.split_whitespace();
            if words.next() == Some("define") {
                let name = words.next().expect("#define without a name");
                let end = name.find('(').unwrap_or(name.len());
                d.macros.push(name[..end].to_string());
            }
            continue;
        }
        code.push_str(&line);
        code.push('\n');
    }
    let toks = tokenize(&code);
    let mut i = 0;
    while i < toks.len() {
        // extern "C" { ... } only sets linkage: its contents are file-scope declarations.
        if toks[i] == Tok::Ident("extern".into())
            && toks.get(i + 1) == Some(&Tok::Lit)
            && toks.get(i + 2) == Some(&Tok::Punct('{'))
        {
            i += 3;
            continue;
        }
        if toks[i] == Tok::Punct('}') || toks[i] == Tok::Punct(';') {
            i += 1;
            continue;
        }
        // One declaration: up to the `;` at depth 0.
        let start = i;
        let mut depth = 0i32;
        while i < toks.len() {
            match toks[i] {
                Tok::Punct('(' | '{' | '[') => depth += 1,
                Tok::Punct(')' | '}' | ']') => depth -= 1,
                Tok::Punct(';') if depth == 0 => break,
                _ => {}
            }
            i += 1;
        }
        declaration(&toks[start..i], &mut d);
        i += 1;
    }
    d
}

fn ident(t: Option<&Tok>) -> Option<&str> {
    match t {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

/// The names one declaration (its tokens, without the `;`) puts at file scope.
fn declaration(toks: &[Tok], d: &mut Declarations) {
    const KEYWORDS: &[&str] = &[
        "typedef", "extern", "static", "inline", "const", "volatile", "struct", "enum", "union",
        "void", "char", "short", "int", "long", "float", "double", "signed", "unsigned", "bool",
        "_Bool",
    ];
    let is_typedef = ident(toks.first()) == Some("typedef");
    // Tags anywhere (definitions and the first mention in a member or parameter).
    for w in toks.windows(2) {
        if let (Some("struct" | "enum" | "union"), Some(tag)) =
            (ident(Some(&w[0])), ident(Some(&w[1])))
        {
            d.tags.insert(tag.to_string());
        }
    }
    // Enum constants: the first name of each element of an `enum [tag] [: type] { ... }` body.
    let mut k = 0;
    while k < toks.len() {
        if ident(toks.get(k)) == Some("enum") {
            let Some(open) = toks[k..].iter().position(|t| *t == Tok::Punct('{')) else {
                break;
            };
            let open = k + open;
            if toks[k + 1..open].contains(&Tok::Punct(';')) {
                k += 1;
                continue;
            }
            let mut depth = 0;
            let mut expect_name = true;
            let mut j = open + 1;
            while j < toks.len() {
                match &toks[j] {
                    Tok::Punct('(' | '{') => depth += 1,
                    Tok::Punct(')') => depth -= 1,
                    Tok::Punct('}') if depth == 0 => break,
                    Tok::Punct('}') => depth -= 1,
                    Tok::Punct(',') if depth == 0 => expect_name = true,
                    Tok::Ident(name) if expect_name && depth == 0 => {
                        d.enum_constants.insert(name.clone());
                        expect_name = false;
                    }
                    _ => {}
                }
                j += 1;
            }
            k = j;
        }
        k += 1;
    }
    // The declarator: the tokens after the last `}` at depth 0 (a definition's body) or all.
    let mut depth = 0;
    let mut body_end = 0;
    for (j, t) in toks.iter().enumerate() {
        match t {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth -= 1;
                if depth == 0 {
                    body_end = j + 1;
                }
            }
            _ => {}
        }
    }
    let decl = &toks[body_end..];
    // At depth 0, `(* name)` is a function pointer (typedef or object) and `name (` a
    // function; parentheses deeper down are parameter lists.
    let mut pointer_name = None;
    let mut before_paren = None;
    let mut depth = 0;
    for (j, t) in decl.iter().enumerate() {
        match t {
            Tok::Punct('(') => {
                if depth == 0 && pointer_name.is_none() && before_paren.is_none() {
                    if let [Tok::Punct('*'), Tok::Ident(n), ..] = &decl[j + 1..] {
                        pointer_name = Some(n.clone());
                    } else {
                        before_paren = j.checked_sub(1).and_then(|q| ident(decl.get(q)));
                    }
                }
                depth += 1;
            }
            Tok::Punct('[') => depth += 1,
            Tok::Punct(')' | ']') => depth -= 1,
            _ => {}
        }
    }
    let last_ident = decl
        .iter()
        .rev()
        .find_map(|t| ident(Some(t)).filter(|n| !KEYWORDS.contains(n)));
    let starts_with_tag = matches!(ident(decl.first()), Some("struct" | "enum" | "union"));
    let bare_tag_decl = !is_typedef
        && starts_with_tag
        && decl.len() <= 2
        && decl.iter().all(|t| matches!(t, Tok::Ident(_)));
    if is_typedef {
        let name = pointer_name
            .or_else(|| last_ident.map(str::to_string))
            .expect("typedef without a name");
        d.typedefs.insert(name);
    } else if let Some(name) = pointer_name {
        d.variables.insert(name);
    } else if let Some(name) = before_paren {
        d.functions.insert(name.to_string());
    } else if bare_tag_decl || (body_end > 0 && decl.is_empty()) {
        // `struct x;` or `enum x { ... };`: the tag only.
    } else if let Some(name) = last_ident {
        d.variables.insert(name.to_string());
    }
}

fn guard(d: &Declarations, file: &str) -> String {
    let g = d
        .macros
        .first()
        .unwrap_or_else(|| panic!("{file} defines no macro (no include guard)"));
    g.clone()
}

fn prefix_problems(header: &str, file: &str) -> Vec<String> {
    let d = declarations(header);
    let guard = guard(&d, file);
    let mut bad = Vec::new();
    if !header.contains(&format!("#ifndef {guard}\n#define {guard}\n")) {
        bad.push(format!(
            "{file}: the first macro, {guard}, is not an include guard"
        ));
    }
    if !(guard.starts_with("LOSSKIT_") || guard.starts_with("LK_")) {
        bad.push(format!(
            "{file}: include guard {guard} is not LOSSKIT_/LK_ prefixed"
        ));
    }
    for (kind, name) in d.all().skip(1) {
        if !(name.starts_with("lk_") || name.starts_with("LK_")) {
            bad.push(format!(
                "{file}: {kind} {name} does not start with lk_ or LK_"
            ));
        }
    }
    bad
}

#[test]
fn identifier_reader_finds_every_kind_of_declaration() {
    // The reader must see each kind of file-scope name, and nothing inside bodies or
    // parameter lists: otherwise the prefix check below could pass vacuously.
    let sample = r#"
#ifndef SAMPLE_H
#define SAMPLE_H
#define CENTRE_ROWS 1024 /* a leaked constant */
#define PAIR(a, b) ((a) + (b))
#ifdef __cplusplus
extern "C" {
#endif
enum colour
#if defined(__cplusplus)
  : int32_t
#endif
 {
  RED = 0,
  GREEN = (1 << 2),
  BLUE,
};
typedef int32_t colour_t;
typedef struct opaque opaque;
typedef struct point { int32_t x; struct inner *field_tag; void (*cb)(int a); } point_t;
struct bare;
union u { int i; float f; };
typedef void (*callback_fn)(const struct point *p, size_t n);
extern int32_t counter;
const char *name_of(const struct point *p, int32_t (*visit)(int32_t depth), size_t n);
void no_args(void);
#ifdef __cplusplus
}  // extern "C"
#endif
#endif  /* SAMPLE_H */
"#;
    let d = declarations(sample);
    assert_eq!(d.macros, ["SAMPLE_H", "CENTRE_ROWS", "PAIR"]);
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        d.tags,
        set(&["bare", "colour", "inner", "opaque", "point", "u"])
    );
    assert_eq!(
        d.typedefs,
        set(&["callback_fn", "colour_t", "opaque", "point_t"])
    );
    assert_eq!(d.enum_constants, set(&["BLUE", "GREEN", "RED"]));
    assert_eq!(d.functions, set(&["name_of", "no_args"]));
    assert_eq!(d.variables, set(&["counter"]));
    let bad = prefix_problems(sample, "sample.h");
    assert!(
        bad.iter().any(|b| b.contains("macro CENTRE_ROWS")),
        "{bad:?}"
    );
    assert!(bad.iter().any(|b| b.contains("guard SAMPLE_H")), "{bad:?}");
    assert_eq!(bad.len(), 1 + 2 + 6 + 4 + 3 + 2 + 1, "{bad:#?}");
}

#[test]
fn headers_declare_only_prefixed_identifiers() {
    for (file, h) in HEADERS {
        let bad = prefix_problems(h, file);
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
    // The reader found the header's contents (not vacuous).
    let core = declarations(GENERATED_HEADER);
    assert_eq!(core.macros[0], "LOSSKIT_H");
    for name in ["lk_status", "lk_tensor", "lk_context", "lk_loss"] {
        assert!(core.typedefs.contains(name), "typedef {name} not found");
        assert!(core.tags.contains(name), "tag {name} not found");
    }
    for name in [
        "LK_OK",
        "LK_ERR_PANIC",
        "LK_BACKEND_WGPU",
        "LK_REDUCTION_MEAN",
    ] {
        assert!(core.enum_constants.contains(name), "{name} not found");
    }
    assert!(core.macros.contains(&"LK_VERSION_MAJOR".to_string()));
    assert!(core.functions.contains("lk_loss_compute"));
    let plugin = declarations(GENERATED_PLUGIN_HEADER);
    assert_eq!(plugin.macros[0], "LOSSKIT_PLUGIN_H");
    assert!(plugin.typedefs.contains("lk_plugin_init_fn"));
}

// ---- the plugin ABI in its own header ----

#[test]
fn plugin_abi_is_in_its_own_header() {
    let core = declarations(GENERATED_HEADER);
    let plugin = declarations(GENERATED_PLUGIN_HEADER);
    let is_plugin_abi = |n: &str| {
        (n.starts_with("lk_plugin_") && (n.ends_with("_v1") || n.ends_with("_fn")))
            || n.starts_with("lk_host_api")
            || ["lk_param_value", "lk_error_sink"].contains(&n)
            || n.starts_with("LK_PLUGIN_")
            || n.starts_with("LK_LOG_")
            || n.starts_with("LK_DOMAIN_")
    };
    for (kind, name) in core.all() {
        assert!(
            !is_plugin_abi(name),
            "losskit.h declares the plugin ABI's {kind} {name}: it belongs to losskit_plugin.h"
        );
    }
    // Tags of losskit.h the plugin tables refer to (struct lk_tensor) are uses, not
    // declarations of the plugin header.
    let core_tags = &core.tags;
    for (kind, name) in plugin.all().skip(1) {
        if kind == "tag" && core_tags.contains(name) {
            continue;
        }
        assert!(
            is_plugin_abi(name),
            "losskit_plugin.h declares {kind} {name}, which is not part of the plugin ABI"
        );
    }
    for name in [
        "lk_host_api_v1",
        "lk_param_value",
        "lk_error_sink",
        "lk_plugin_input_v1",
        "lk_plugin_param_v1",
        "lk_plugin_aux_v1",
        "lk_plugin_call_v1",
        "lk_plugin_loss_v1",
        "lk_plugin_v1",
        "lk_plugin_create_fn",
        "lk_plugin_destroy_fn",
        "lk_plugin_compute_fn",
        "lk_plugin_init_fn",
    ] {
        assert!(
            plugin.typedefs.contains(name),
            "losskit_plugin.h lacks {name}"
        );
    }
    for name in ["LK_PLUGIN_ABI_VERSION", "LK_LOG_ERROR", "LK_DOMAIN_CLASS"] {
        assert!(
            plugin.macros.iter().any(|m| m == name),
            "losskit_plugin.h lacks {name}"
        );
    }
    // The host side of plugins stays in the C API.
    for name in [
        "lk_plugin_load",
        "lk_plugin_count",
        "lk_plugin_describe",
        "lk_plugin_loss_id_at",
    ] {
        assert!(core.functions.contains(name), "losskit.h lacks {name}");
    }
    assert!(
        GENERATED_PLUGIN_HEADER.contains("\n#include \"losskit.h\"\n"),
        "losskit_plugin.h must include losskit.h"
    );
    assert!(!GENERATED_HEADER.contains("losskit_plugin.h\""));
}

/// Compiles `src` with `compiler` and `args`, -Werror and all warnings, against include/.
fn compiles(compiler: &str, args: &[&str], file: &str, src: &str) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("lk-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(file);
    std::fs::write(&path, src).unwrap();
    let out = Command::new(compiler)
        .args(args)
        .args([
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-fsyntax-only",
            "-I",
        ])
        .arg(root().join("include"))
        .arg(&path)
        .output()
        .map_err(|e| format!("cannot run {compiler}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn plugin_header_compiles_alone_as_c99_and_cpp17() {
    // Included twice and first: it must bring losskit.h itself, and its guards must work.
    let use_it = "static int32_t init(const lk_host_api_v1 *h, lk_error_sink *e,\n\
                  const lk_plugin_v1 **out) { (void)h; (void)e; *out = 0; return LK_OK; }\n\
                  lk_plugin_init_fn entry = init;\n\
                  int main(void) { return LK_PLUGIN_ABI_VERSION == 1 && entry ? 0 : 1; }\n";
    let src = format!("#include \"losskit_plugin.h\"\n#include \"losskit_plugin.h\"\n{use_it}");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    for (compiler, args, file) in [
        (cc.as_str(), &["-std=c99"][..], "plugin_h.c"),
        (cxx.as_str(), &["-std=c++17"][..], "plugin_h.cpp"),
    ] {
        if let Err(e) = compiles(compiler, args, file, &src) {
            panic!("losskit_plugin.h does not compile ({compiler} {args:?}):\n{e}");
        }
    }
}

// ---- the header as a manual ----

/// The section titles of a header, in order, with the byte offset of each heading.
fn sections(h: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut prev_rule = false;
    for line in h.split_inclusive('\n') {
        if prev_rule {
            if let Some(title) = line.strip_prefix(" * ") {
                let (num, title) = title.trim_end().split_once(". ").unwrap_or(("", ""));
                if num.parse::<usize>().is_ok() {
                    out.push((offset, title.to_string()));
                }
            }
        }
        prev_rule = line.starts_with("/* ====");
        offset += line.len();
    }
    out
}

#[test]
fn sections_come_in_the_order_a_reader_needs_them() {
    let h = GENERATED_HEADER;
    let found = sections(h);
    let titles: Vec<&str> = found.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Version",
            "Status codes and error messages",
            "Contexts",
            "Tensors",
            "Losses",
            "Introspection",
            "Device buffers",
        ]
    );
    // The overview comes first, then each item under its section.
    let overview = &h[..found[0].0];
    assert!(overview.contains("Contents:") && overview.contains("Conventions:"));
    let section_of = |needle: &str| {
        // Searched after the overview, whose example uses some of the same names.
        let at = h[found[0].0..]
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in the header"))
            + found[0].0;
        found
            .iter()
            .rev()
            .find(|(o, _)| *o < at)
            .map(|(_, t)| t.as_str())
            .unwrap_or("the overview")
    };
    for (needle, section) in [
        ("#define LK_VERSION_MAJOR ", "Version"),
        (" lk_version_number(", "Version"),
        ("enum lk_status\n", "Status codes and error messages"),
        (
            " *lk_last_error_message(",
            "Status codes and error messages",
        ),
        (" lk_context_create(", "Contexts"),
        (" lk_plugin_load(", "Contexts"),
        ("typedef struct lk_tensor {", "Tensors"),
        ("#define LK_DEVICE_CPU ", "Tensors"),
        (" lk_loss_create(", "Losses"),
        (" lk_loss_set_f64(", "Losses"),
        (" lk_loss_compute(", "Losses"),
        ("enum lk_reduction\n", "Losses"),
        (" lk_loss_describe(", "Introspection"),
        (" lk_plugin_describe(", "Introspection"),
        (" lk_buffer_create(", "Device buffers"),
    ] {
        assert_eq!(section_of(needle), section, "{needle:?}");
    }
    let plugin: Vec<String> = sections(GENERATED_PLUGIN_HEADER)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert!(plugin.len() >= 4, "losskit_plugin.h sections: {plugin:?}");
}

#[test]
fn overview_shows_the_smoke_example() {
    let smoke = std::fs::read_to_string(root().join("tests/c/smoke.c")).unwrap();
    let h = GENERATED_HEADER;
    let start = h
        .find(" * Example (tests/c/smoke.c")
        .expect("the overview has no example");
    let overview_end = h[start..].find("\n */\n").expect("end of the overview") + start;
    let block = &h[start..overview_end];
    // The intro, an empty comment line, then the program indented by four spaces.
    let (_, code) = block
        .split_once("\n *\n")
        .expect("blank line before the example");
    let shown: String = code
        .lines()
        .map(|l| {
            let l = l.strip_prefix(" *").expect("a comment line");
            let l = l.strip_prefix("     ").unwrap_or(l);
            format!("{l}\n")
        })
        .collect();
    assert_eq!(
        shown, smoke,
        "the header's example differs from tests/c/smoke.c"
    );
}

#[test]
fn comments_are_plain_text() {
    for (file, h) in HEADERS {
        for (n, line) in h.lines().enumerate() {
            let t = line.trim_start();
            let comment = t.starts_with("* ") || t.starts_with("/*") || t == "*";
            if !comment {
                continue;
            }
            let text = t.trim_start_matches(['/', '*']).trim_start();
            let at = format!("{file}:{}: {line}", n + 1);
            assert!(!text.starts_with("# "), "rustdoc heading at {at}");
            assert!(!line.contains('`'), "backticks at {at}");
            assert!(
                !line.contains("[`") && !line.contains("]("),
                "intra-doc link at {at}"
            );
            assert!(
                !line.contains("crate::") && !line.contains("Self::"),
                "Rust path at {at}"
            );
            assert!(
                !line.contains("**") || t.starts_with("/**"),
                "markdown bold at {at}"
            );
        }
    }
    // The safety contract is kept, as plain text.
    assert!(GENERATED_HEADER.contains("\n * Safety:\n"));
}
