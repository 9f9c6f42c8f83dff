// Checks the Julia binding against the C header without a Julia runtime:
//  1. every ccall((:sym, lib), Ret, (Args...,), ...) in bindings/julia names a function of
//     include/losskit.h, with the same number of arguments and matching argument and
//     return types;
//  2. LibLossKit.jl wraps every function of the header (the whole C API);
//  3. every struct of the header has a Julia struct with the same fields, in order, of
//     matching types (so the memory layouts agree), and opaque types exist;
//  4. every constant (#define and enum value) of the header, and every #define of the plugin
//     ABI header include/losskit_plugin.h, has a Julia const of the same value, and every
//     Julia LK_ const is one of them. The plugin tables themselves (the structs and
//     callback types a plugin author fills in) are not mirrored: this is a host binding.
// It first runs itself on deliberately broken copies of the binding and fails if it does
// not notice, so it cannot pass vacuously.
//
// Usage: node check_ccalls.mjs [header] [julia package dir] [plugin header]
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const headerPath = process.argv[2] ?? join(here, '..', '..', '..', 'include', 'losskit.h');
const pkgDir = process.argv[3] ?? join(here, '..', 'LossKit');
const pluginHeaderPath = process.argv[4] ?? join(dirname(headerPath), 'losskit_plugin.h');

// ---------------------------------------------------------------------------------------
// C header
// ---------------------------------------------------------------------------------------

function stripComments(s) {
  return s.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/[^\n]*/g, ' ');
}

function evalInt(expr, known) {
  const replaced = expr.replace(/[A-Za-z_]\w*/g, (id) => {
    if (!(id in known)) throw new Error(`unknown name ${id} in '${expr}'`);
    return `(${known[id]})`;
  });
  if (!/^[\d\s()+\-*]+$/.test(replaced)) throw new Error(`cannot evaluate '${expr}'`);
  return Function(`"use strict"; return (${replaced});`)();
}

// Canonical spelling of a C type, e.g. "Ptr{Ptr{lk_context}}", "Cstring", "Int32".
const C_SCALARS = {
  void: 'Cvoid', bool: 'Bool', int32_t: 'Int32', uint32_t: 'UInt32', int64_t: 'Int64',
  uint64_t: 'UInt64', uint8_t: 'UInt8', uint16_t: 'UInt16', int8_t: 'Int8', size_t: 'Csize_t',
  double: 'Cdouble', float: 'Cfloat', int: 'Int32', char: 'Cchar',
};
function cType(t, enums) {
  let s = t.replace(/\bconst\b/g, ' ').replace(/\bstruct\b/g, ' ').replace(/\s+/g, ' ').trim();
  let stars = 0;
  while (s.endsWith('*')) {
    stars++;
    s = s.slice(0, -1).trim();
  }
  let base = enums.has(s) ? 'Int32' : (C_SCALARS[s] ?? s);
  // `char *` is a Cstring at any depth: `const char **` is Ptr{Cstring}.
  if (base === 'Cchar' && stars >= 1) {
    base = 'Cstring';
    stars--;
  }
  for (let k = 0; k < stars; k++) base = `Ptr{${base}}`;
  return base;
}

function defines(text) {
  const consts = {};
  for (const m of text.matchAll(/^#define\s+(LK_\w+)\s+(.+)$/gm)) {
    consts[m[1]] = evalInt(m[2].trim(), consts);
  }
  return consts;
}

function parseHeader(text) {
  const consts = defines(text);
  const src = stripComments(text).replace(/^#.*$/gm, ' ');
  const enums = new Set();
  for (const m of src.matchAll(/enum\s+(\w+)\s*(?::\s*\w+\s*)?\{([^}]*)\}/g)) {
    enums.add(m[1]);
    for (const item of m[2].split(',')) {
      const kv = item.trim().match(/^(\w+)\s*=\s*(-?\d+)$/);
      if (kv) consts[kv[1]] = Number(kv[2]);
    }
  }
  for (const m of src.matchAll(/typedef\s+(?:enum\s+)?(\w+)\s+(\w+)\s*;/g)) {
    if (m[1] === 'int32_t' || enums.has(m[1])) enums.add(m[2]);
  }
  const structs = {};
  for (const m of src.matchAll(/typedef\s+struct\s+(\w+)\s*\{([^}]*)\}\s*(\w+)\s*;/g)) {
    structs[m[1]] = m[2].split(';').map((f) => f.trim()).filter(Boolean).map((f) => {
      const fm = f.match(/^(.*?)(\w+)$/s);
      return { name: fm[2], type: cType(fm[1], enums) };
    });
  }
  const opaque = new Set();
  for (const m of src.matchAll(/typedef\s+struct\s+(\w+)\s+(\w+)\s*;/g)) opaque.add(m[1]);
  const fns = {};
  for (const m of src.matchAll(/([A-Za-z_][\w\s*]*?)\b(lk_\w+)\s*\(([^)]*)\)\s*;/g)) {
    const params = m[3].trim() === 'void' || m[3].trim() === '' ? [] : m[3].split(',').map((p) => {
      const pm = p.trim().match(/^(.*?)(\w+)$/s);
      return { name: pm[2], type: cType(pm[1], enums) };
    });
    fns[m[2]] = { ret: cType(m[1], enums), params };
  }
  return { consts, enums, structs, opaque, fns };
}

// ---------------------------------------------------------------------------------------
// Julia sources
// ---------------------------------------------------------------------------------------

function stripJuliaComments(s) {
  return s.replace(/#=[\s\S]*?=#/g, ' ').replace(/"""[\s\S]*?"""/g, '""').replace(/#[^\n]*/g, '');
}

// Split at top-level commas (outside (), {}, [] and strings).
function splitTop(s) {
  const out = [];
  let depth = 0, cur = '', str = false;
  for (const ch of s) {
    if (str) {
      cur += ch;
      if (ch === '"') str = false;
      continue;
    }
    if (ch === '"') str = true;
    if ('({['.includes(ch)) depth++;
    if (')}]'.includes(ch)) depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

function balanced(s, open) {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    if (s[i] === '(') depth++;
    else if (s[i] === ')' && --depth === 0) return s.slice(open + 1, i);
  }
  throw new Error('unbalanced parentheses');
}

function lineOf(s, idx) {
  return s.slice(0, idx).split('\n').length;
}

function parseJulia(files) {
  const aliases = {};
  const consts = {};
  const structs = {};
  const opaque = new Set();
  const ccalls = [];
  const problems = [];
  for (const { path, text } of files) {
    const src = stripJuliaComments(text);
    for (const m of src.matchAll(/^\s*const\s+(\w+)\s*=\s*(.+)$/gm)) {
      const rhs = m[2].trim();
      if (/^(Int|UInt)\d+$|^C\w+$|^Bool$/.test(rhs)) aliases[m[1]] = rhs;
      else if (m[1].startsWith('LK_')) {
        const v = rhs.replace(/\b(?:Int|UInt)\d+\(([^()]*)\)/g, '$1');
        try {
          consts[m[1]] = evalInt(v, consts);
        } catch (e) {
          problems.push(`${path}: const ${m[1]}: ${e.message}`);
        }
      }
    }
    for (const m of src.matchAll(/^\s*mutable\s+struct\s+(\w+)\s+end\b/gm)) opaque.add(m[1]);
    for (const m of src.matchAll(/^\s*struct\s+(\w+)\s*\n([\s\S]*?)^\s*end\b/gm)) {
      const fields = [];
      for (const line of m[2].split('\n')) {
        const fm = line.trim().match(/^(\w+)::(.+)$/);
        if (fm) fields.push({ name: fm[1], type: fm[2].trim() });
      }
      structs[m[1]] = fields;
    }
    if (/@ccall\b/.test(src)) problems.push(`${path}: uses @ccall, which this checker does not read (use ccall)`);
    const re = /\bccall\s*\(/g;
    let m;
    while ((m = re.exec(src))) {
      const open = m.index + m[0].length - 1;
      const args = splitTop(balanced(src, open));
      const line = lineOf(src, m.index);
      const target = args[0]?.match(/^\(\s*:(\w+)\s*,\s*(\w+)\s*\)$/);
      if (!target) {
        problems.push(`${path}:${line}: ccall target '${args[0]}' is not (:symbol, library)`);
        continue;
      }
      const tuple = args[2]?.trim() ?? '';
      if (!tuple.startsWith('(') || !tuple.endsWith(')')) {
        problems.push(`${path}:${line}: ccall argument types '${tuple}' are not a tuple`);
        continue;
      }
      const argTypes = splitTop(tuple.slice(1, -1));
      ccalls.push({ path, line, sym: target[1], lib: target[2], ret: args[1].trim(), args: argTypes,
                    nvalues: args.length - 3 });
    }
  }
  return { aliases, consts, structs, opaque, ccalls, problems };
}

const J_CANON = { Float64: 'Cdouble', Float32: 'Cfloat', Cint: 'Int32', Cuint: 'UInt32', Clonglong: 'Int64',
                  Culonglong: 'UInt64', Cuchar: 'UInt8', Cushort: 'UInt16', Nothing: 'Cvoid', UInt: 'Csize_t',
                  'Ptr{Cchar}': 'Cstring', 'Ptr{UInt8}': 'Cstring', 'Ptr{Int8}': 'Cstring' };
function jType(t, aliases) {
  t = t.replace(/\s+/g, '');
  const inner = t.match(/^Ptr\{(.+)\}$/);
  if (inner) {
    const p = `Ptr{${jType(inner[1], aliases)}}`;
    return J_CANON[p] ?? p;
  }
  const a = aliases[t] ?? t;
  return J_CANON[a] ?? a;
}

// ---------------------------------------------------------------------------------------
// The check
// ---------------------------------------------------------------------------------------

function check(header, pluginHeader, files) {
  const h = parseHeader(header);
  const j = parseJulia(files);
  const errors = [...j.problems];
  const pluginConsts = defines(pluginHeader);
  if (!('LK_PLUGIN_ABI_VERSION' in pluginConsts)) errors.push('the plugin header defines no LK_PLUGIN_ABI_VERSION');
  for (const [name, v] of Object.entries(pluginConsts)) {
    if (name in h.consts) errors.push(`${name} is defined by both headers`);
    h.consts[name] = v;
  }
  if (Object.keys(h.fns).length < 10) errors.push(`header parse found only ${Object.keys(h.fns).length} functions`);
  const wrapped = new Set();
  for (const c of j.ccalls) {
    const where = `${c.path}:${c.line}: ${c.sym}`;
    const f = h.fns[c.sym];
    if (!f) {
      errors.push(`${where}: no such function in the header`);
      continue;
    }
    if (c.lib !== 'liblosskit') errors.push(`${where}: library '${c.lib}' is not liblosskit`);
    if (c.path.endsWith('LibLossKit.jl')) wrapped.add(c.sym);
    const ret = jType(c.ret, j.aliases);
    if (ret !== f.ret) errors.push(`${where}: returns ${c.ret} (${ret}), the header says ${f.ret}`);
    if (c.args.length !== f.params.length) {
      errors.push(`${where}: ${c.args.length} argument types, the header has ${f.params.length}`);
      continue;
    }
    if (c.nvalues !== f.params.length) errors.push(`${where}: ${c.nvalues} values passed for ${f.params.length} arguments`);
    c.args.forEach((a, k) => {
      const jt = jType(a, j.aliases);
      if (jt !== f.params[k].type) {
        errors.push(`${where}: argument ${k + 1} (${f.params[k].name}) is ${a} (${jt}), the header says ${f.params[k].type}`);
      }
    });
  }
  for (const name of Object.keys(h.fns)) {
    if (!wrapped.has(name)) errors.push(`LibLossKit.jl: no ccall wrapper for ${name}`);
  }
  for (const [name, fields] of Object.entries(h.structs)) {
    const jf = j.structs[name];
    if (!jf) {
      errors.push(`no Julia struct ${name}`);
      continue;
    }
    const cs = fields.map((f) => `${f.name}::${f.type}`).join(', ');
    const js = jf.map((f) => `${f.name}::${jType(f.type, j.aliases)}`).join(', ');
    if (cs !== js) errors.push(`struct ${name}: Julia (${js}) differs from C (${cs})`);
  }
  for (const name of h.opaque) {
    if (!h.structs[name] && !j.opaque.has(name)) errors.push(`no Julia opaque type ${name}`);
  }
  for (const [name, v] of Object.entries(h.consts)) {
    if (!(name in j.consts)) errors.push(`no Julia const ${name} (= ${v})`);
    else if (j.consts[name] !== v) errors.push(`const ${name} is ${j.consts[name]} in Julia, ${v} in the header`);
  }
  for (const name of Object.keys(j.consts)) {
    if (!(name in h.consts)) errors.push(`Julia const ${name} is not in the header`);
  }
  return { errors, nccalls: j.ccalls.length, nfns: Object.keys(h.fns).length, nstructs: Object.keys(h.structs).length,
           nconsts: Object.keys(h.consts).length };
}

function collect(path, acc) {
  if (statSync(path).isDirectory()) {
    for (const name of readdirSync(path).sort()) {
      if (name === 'node_modules' || name.startsWith('.')) continue;
      collect(join(path, name), acc);
    }
  } else if (path.endsWith('.jl')) acc.push({ path: relative(process.cwd(), path), text: readFileSync(path, 'utf8') });
  return acc;
}

const header = readFileSync(headerPath, 'utf8');
const pluginHeader = readFileSync(pluginHeaderPath, 'utf8');
const files = collect(pkgDir, []);

// Self-test: each mutation of the binding must be caught.
const lib = files.find((f) => f.path.endsWith('LibLossKit.jl'));
if (!lib) {
  console.error('LibLossKit.jl not found');
  process.exit(2);
}
const mutations = {
  'argument type': (s) => s.replace('(Ptr{lk_loss}, Cstring, Cdouble)', '(Ptr{lk_loss}, Cstring, Cfloat)'),
  'return type': (s) => s.replace('ccall((:lk_abi_version, liblosskit), UInt32', 'ccall((:lk_abi_version, liblosskit), Int32'),
  'unknown symbol': (s) => s.replace(':lk_loss_free,', ':lk_loss_release,'),
  'struct field': (s) => s.replace('    ndim::Int32\n', '    ndim::Int64\n'),
  'constant value': (s) => s.replace('LK_ERR_INVALID_TARGET = Int32(8)', 'LK_ERR_INVALID_TARGET = Int32(9)'),
  'plugin constant value': (s) => s.replace('LK_DOMAIN_CLASS = Int32(6)', 'LK_DOMAIN_CLASS = Int32(7)'),
  'argument count': (s) => s.replace('(Ptr{lk_context}, Csize_t), ctx, index)', '(Ptr{lk_context},), ctx, index)'),
};
for (const [name, mutate] of Object.entries(mutations)) {
  const text = mutate(lib.text);
  if (text === lib.text) {
    console.error(`self-test: the '${name}' mutation no longer applies; update the checker`);
    process.exit(2);
  }
  const r = check(header, pluginHeader, files.map((f) => (f === lib ? { ...f, text } : f)));
  if (r.errors.length === 0) {
    console.error(`self-test failed: a broken ${name} was not detected`);
    process.exit(2);
  }
}

const r = check(header, pluginHeader, files);
for (const e of r.errors) console.log(`FAILED  ${e}`);
console.log(`${r.nccalls} ccalls checked against ${r.nfns} header functions, ${r.nstructs} structs, ${r.nconsts} constants: ` +
            (r.errors.length ? `${r.errors.length} problem(s)` : 'all match'));
process.exit(r.errors.length ? 1 : 0);
