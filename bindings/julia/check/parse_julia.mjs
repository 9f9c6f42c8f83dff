// Parse check of the Julia binding without a Julia runtime: every .jl file under
// bindings/julia must parse with the tree-sitter Julia grammar (WASM build from npm) with
// no ERROR or MISSING node. First it checks itself on known-broken snippets, so that a
// grammar or loader problem cannot make it pass vacuously.
//
// Usage: node parse_julia.mjs [files or directories...]   (default: ../LossKit)
import { Parser, Language } from 'web-tree-sitter';
import { createRequire } from 'node:module';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

await Parser.init();
const julia = await Language.load(require.resolve('tree-sitter-julia/tree-sitter-julia.wasm'));
const parser = new Parser();
parser.setLanguage(julia);

// Innermost ERROR / MISSING nodes of a tree.
function problems(tree) {
  const out = [];
  const visit = (node) => {
    if (!node.hasError && !node.isMissing) return;
    let childHas = false;
    for (const child of node.children) {
      if (child.hasError || child.isMissing) {
        childHas = true;
        visit(child);
      }
    }
    if ((node.isError || node.isMissing) && !childHas) {
      const p = node.startPosition;
      out.push({ line: p.row + 1, col: p.column + 1, kind: node.isMissing ? `missing ${node.type}` : 'syntax error',
                 text: node.text.split('\n')[0].slice(0, 60) });
    }
  };
  visit(tree.rootNode);
  return out;
}

const broken = {
  'missing end': 'function f(x)\n    x + 1\n',
  'unclosed paren': 'y = f(1, 2\nz = 3\n',
  'unterminated string': 'x = "abc\ny = 2\n',
  'if without end': 'if x > 1\n    y = 2\nelse\n    y = 3\n',
  'bad ccall tuple': 'ccall((:f, lib), Cvoid, (Int32,, Int32), 1, 2)\n',
};
for (const [name, src] of Object.entries(broken)) {
  if (problems(parser.parse(src)).length === 0) {
    console.error(`self-test failed: the '${name}' snippet parsed without error`);
    process.exit(2);
  }
}
const good = 'function f(x::Vector{Float32})\n    GC.@preserve x begin\n        ccall((:g, "lib"), Cvoid, (Ptr{Float32},), x)\n    end\nend\n';
if (problems(parser.parse(good)).length !== 0) {
  console.error('self-test failed: a valid snippet did not parse');
  process.exit(2);
}

function collect(path, acc) {
  const st = statSync(path);
  if (st.isDirectory()) {
    for (const name of readdirSync(path).sort()) {
      if (name === 'node_modules' || name.startsWith('.')) continue;
      collect(join(path, name), acc);
    }
  } else if (path.endsWith('.jl')) {
    acc.push(path);
  }
  return acc;
}

const roots = process.argv.length > 2 ? process.argv.slice(2) : [join(here, '..', 'LossKit')];
const files = roots.flatMap((r) => collect(r, []));
if (files.length === 0) {
  console.error('no .jl files found');
  process.exit(2);
}
let bad = 0;
for (const f of files) {
  const tree = parser.parse(readFileSync(f, 'utf8'));
  const ps = problems(tree);
  const name = relative(process.cwd(), f);
  if (ps.length === 0) {
    console.log(`ok      ${name}`);
  } else {
    bad++;
    for (const p of ps) console.log(`FAILED  ${name}:${p.line}:${p.col}: ${p.kind} near '${p.text}'`);
  }
}
console.log(`${files.length - bad}/${files.length} Julia files parse`);
process.exit(bad ? 1 : 0);
