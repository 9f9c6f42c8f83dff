// cut_cross_entropy on the GPU (after the losskit prelude). See the Rust module
// `cut_cross_entropy::gpu` for the passes and the chunking.
//
// Rows are the contributing rows of the current row chunk, compacted (row r of the chunk is
// contributing row r0 + r overall); vocabulary entries are those of the current vocabulary
// chunk (entry j of the chunk is q0 + j). Every matrix product runs on 64 x 64 output tiles,
// 256 threads each computing 4 x 4 outputs (rows ty + 16a, columns tx + 16b), with the inner
// dimension taken 16 at a time through workgroup memory. Nothing is accumulated with
// atomics except the tile maxima of gradient filtering (a u32 max of non-negative floats,
// which does not depend on the order).

struct U {
    rows: u32,     // rows of the chunk
    r0: u32,       // index of its first row among the contributing rows
    qn: u32,       // vocabulary entries of the chunk
    q0: u32,       // its first entry
    d: u32,        // hidden size D
    nb: u32,       // 64-entry blocks of the whole vocabulary (partials per row)
    c_base: u32,   // word offset of the chunk's first row of C in its binding
    c_rs: u32,     // row stride of C
    v_base: u32,   // word offset (in vec2) of the chunk's first entry in vinfo
    o_base: u32,   // word offset of the output window
    o_rs: u32,     // row stride of the output
    acc: u32,      // 1: add to the output, 0: overwrite it
    s_rs: u32,     // row stride of the scratch block
    bn: u32,       // filtering: rows per tile
    nqt: u32,      // filtering: vocabulary tiles
    mask_on: u32,  // 1: read the scratch block through the filtering mask
    cap: f32,      // soft-cap (0 = off)
    lambda: f32,   // z-loss coefficient
    eps: f32,      // filtering threshold
    pad: u32,
}

@group(0) @binding(0) var<uniform> u: U;
// Contributing rows of e for this chunk, [rows, d] contiguous.
@group(0) @binding(1) var<storage, read> e: array<f32>;
// Rows of c for this chunk: row j at c_base + j * c_rs.
@group(0) @binding(2) var<storage, read> cm: array<f32>;
// Per vocabulary entry: (bias, filtering tile of the entry).
@group(0) @binding(3) var<storage, read> vinfo: array<vec2<f32>>;
// Per row: [2r] = (lse, k1 = w (1 + 2 lambda lse), w, bitcast target), [2r + 1] = (zt, loss).
@group(0) @binding(4) var<storage, read_write> rinfo: array<vec4<f32>>;
// Per (row, 64-entry block): partial (max, sum of exp(z - max)).
@group(0) @binding(5) var<storage, read_write> part: array<vec2<f32>>;
// Scratch block [rows, qn] (row stride s_rs): logits or gradient of the chunk pair.
@group(0) @binding(6) var<storage, read_write> sbuf: array<f32>;
// Output window: gradient of e or c, dbias or vocabulary column sums.
@group(0) @binding(7) var<storage, read_write> outb: array<f32>;
// Filtering: per (row tile, vocabulary tile), the largest |p - onehot| as u32 bits.
@group(0) @binding(8) var<storage, read_write> tmax: array<atomic<u32>>;

// Logits epilogue: 0 = per-block statistics and target logit, 1 = logits into the scratch
// block, 2 = filtering tile maxima, 3 = gradient G into the scratch block, 4 = as 0 and the
// logits into the scratch block (kept for `zgrad`).
override MODE: u32 = 0u;
// Backward product: false = dE (rows x D, over the chunk's entries), true = dC (entries x D,
// over the chunk's rows).
override TRANS: bool = false;

const LDA: u32 = 65u;          // padded row of a 16 x 64 operand tile (no bank conflicts)
const B_OFF: u32 = 1040u;      // 16 * LDA
// Operand tiles during the products; afterwards (statistics) the per-thread (max, sum)
// pairs of the tile rows, max at [k] and sum at [1024 + k]. 8320 bytes in all.
var<workgroup> sm: array<f32, 2080>;

fn small_tile(row: u32, vtile: u32) -> bool {
    let t = (row / u.bn) * u.nqt + vtile;
    return bitcast<f32>(atomicLoad(&tmax[t])) < u.eps;
}

// The scratch block's element (row r, entry j), through the filtering mask when asked.
fn g_at(r: u32, j: u32) -> f32 {
    let g = sbuf[r * u.s_rs + j];
    if (u.mask_on != 0u) {
        if (small_tile(u.r0 + r, u32(vinfo[u.v_base + j].y))) {
            return 0.0;
        }
    }
    return g;
}

// Logits z = e_r . c_j + b_j (soft-capped) of one 64 x 64 tile, then the epilogue MODE.
@compute @workgroup_size(256)
fn logits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tx = lid % 16u;
    let ty = lid / 16u;
    let j0 = wid.x * 64u;
    let i0 = wid.y * 64u;
    var acc: array<vec4<f32>, 4>;
    for (var a = 0u; a < 4u; a++) {
        acc[a] = vec4<f32>(0.0);
    }
    for (var k0 = 0u; k0 < u.d; k0 += 16u) {
        for (var s = 0u; s < 4u; s++) {
            let el = lid + 256u * s;
            let kk = el % 16u;
            let ii = el / 16u;
            let k = k0 + kk;
            var av = 0.0;
            if (i0 + ii < u.rows && k < u.d) {
                av = e[(i0 + ii) * u.d + k];
            }
            sm[kk * LDA + ii] = av;
            var bv = 0.0;
            if (j0 + ii < u.qn && k < u.d) {
                bv = cm[u.c_base + (j0 + ii) * u.c_rs + k];
            }
            sm[B_OFF + kk * LDA + ii] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk++) {
            let bo = B_OFF + kk * LDA + tx;
            let b = vec4<f32>(sm[bo], sm[bo + 16u], sm[bo + 32u], sm[bo + 48u]);
            let ao = kk * LDA + ty;
            acc[0] += sm[ao] * b;
            acc[1] += sm[ao + 16u] * b;
            acc[2] += sm[ao + 32u] * b;
            acc[3] += sm[ao + 48u] * b;
        }
        workgroupBarrier();
    }
    for (var a = 0u; a < 4u; a++) {
        let i = i0 + ty + 16u * a;
        var info = vec4<f32>(0.0);
        var tgt = 0xffffffffu;
        if (i < u.rows) {
            info = rinfo[2u * i];
            tgt = bitcast<u32>(info.w);
        }
        var m = LK_NEG_BIG;
        var zs = vec4<f32>(LK_NEG_BIG);
        for (var b = 0u; b < 4u; b++) {
            let j = j0 + tx + 16u * b;
            if (i >= u.rows || j >= u.qn) {
                continue;
            }
            let vi = vinfo[u.v_base + j];
            var z = acc[a][b] + vi.x;
            if (u.cap > 0.0) {
                z = u.cap * lk_tanh(z / u.cap);
            }
            let hit = u.q0 + j == tgt;
            if (MODE == 0u || MODE == 4u) {
                zs[b] = z;
                m = max(m, z);
                if (hit) {
                    rinfo[2u * i + 1u].x = z;
                }
                if (MODE == 4u) {
                    sbuf[i * u.s_rs + j] = z;
                }
            } else if (MODE == 1u) {
                sbuf[i * u.s_rs + j] = z;
            } else if (MODE == 2u) {
                let p = exp(z - info.x);
                let f = abs(select(p, 1.0 - p, hit));
                let t = ((u.r0 + i) / u.bn) * u.nqt + u32(vi.y);
                atomicMax(&tmax[t], bitcast<u32>(f));
            } else {
                let p = exp(z - info.x);
                var g = info.y * p - select(0.0, info.z, hit);
                sbuf[i * u.s_rs + j] = g * lk_softcap_grad(z, u.cap);
            }
        }
        if (MODE == 0u || MODE == 4u) {
            var s = 0.0;
            for (var b = 0u; b < 4u; b++) {
                if (zs[b] > LK_NEG_BIG) {
                    s += lk_exp_sub(zs[b], m);
                }
            }
            sm[(ty + 16u * a) * 16u + tx] = m;
            sm[1024u + (ty + 16u * a) * 16u + tx] = s;
        }
    }
    if (MODE == 0u || MODE == 4u) {
        workgroupBarrier();
        if (lid < 64u && i0 + lid < u.rows && j0 < u.qn) {
            var ms = vec2<f32>(sm[lid * 16u], sm[1024u + lid * 16u]);
            for (var t = 1u; t < 16u; t++) {
                let k = lid * 16u + t;
                ms = lk_merge_ms(ms.x, ms.y, sm[k], sm[1024u + k]);
            }
            part[(i0 + lid) * u.nb + u.q0 / 64u + wid.x] = ms;
        }
    }
}

// Per row: merge the partials in block order into lse, then the loss and the gradient factor.
@compute @workgroup_size(256)
fn merge(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= u.rows) {
        return;
    }
    var m = LK_NEG_BIG;
    for (var b = 0u; b < u.nb; b++) {
        m = max(m, part[r * u.nb + b].x);
    }
    // Blocked sum of the rescaled partial sums.
    var acc = lk_acc0();
    for (var b = 0u; b < u.nb; b++) {
        let pb = part[r * u.nb + b];
        acc = lk_acc_add(acc, pb.y * lk_exp_sub(pb.x, m));
    }
    let lse = m + log(lk_acc(acc));
    let info = rinfo[2u * r];
    let lam = u.lambda;
    rinfo[2u * r] = vec4<f32>(lse, info.z * (1.0 + 2.0 * lam * lse), info.z, info.w);
    let zt = rinfo[2u * r + 1u].x;
    rinfo[2u * r + 1u].y = (lse - zt) + lam * lse * lse;
}

// The gradient G from logits kept in the scratch block (after `merge`), in place; one
// invocation per element, on a 2-D grid of workgroups.
@compute @workgroup_size(256)
fn zgrad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let idx = (wid.y * nwg.x + wid.x) * 256u + lid;
    if (idx >= u.rows * u.qn) {
        return;
    }
    let r = idx / u.qn;
    let j = idx % u.qn;
    let info = rinfo[2u * r];
    let o = r * u.s_rs + j;
    let z = sbuf[o];
    let p = exp(z - info.x);
    let hit = u.q0 + j == bitcast<u32>(info.w);
    let g = info.y * p - select(0.0, info.z, hit);
    sbuf[o] = g * lk_softcap_grad(z, u.cap);
}

// Per vocabulary entry of the chunk: the column sum of the scratch block over the chunk's
// rows (in row order, blocked), added to (or written into) the output window.
@compute @workgroup_size(256)
fn colsum(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if (j >= u.qn) {
        return;
    }
    var acc = lk_acc0();
    for (var r = 0u; r < u.rows; r++) {
        acc = lk_acc_add(acc, g_at(r, j));
    }
    let s = lk_acc(acc);
    let o = u.o_base + j;
    if (u.acc != 0u) {
        outb[o] = outb[o] + s;
    } else {
        outb[o] = s;
    }
}

// Backward products over the scratch block G of the chunk pair:
// TRANS = false: dE[r, :] (+)= sum_j G[r, j] c_j   (rows x D tiles, inner over the entries);
// TRANS = true:  dC[j, :] (+)= sum_r G[r, j] e_r   (entries x D tiles, inner over the rows).
@compute @workgroup_size(256)
fn bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tx = lid % 16u;
    let ty = lid / 16u;
    let j0 = wid.x * 64u;
    let i0 = wid.y * 64u;
    let ni = select(u.rows, u.qn, TRANS);
    let nk = select(u.qn, u.rows, TRANS);
    var acc: array<vec4<f32>, 4>;
    for (var a = 0u; a < 4u; a++) {
        acc[a] = vec4<f32>(0.0);
    }
    for (var k0 = 0u; k0 < nk; k0 += 16u) {
        for (var s = 0u; s < 4u; s++) {
            let el = lid + 256u * s;
            var kk: u32;
            var ii: u32;
            var r: u32;
            var j: u32;
            if (TRANS) {
                ii = el % 64u;
                kk = el / 64u;
                j = i0 + ii;
                r = k0 + kk;
            } else {
                kk = el % 16u;
                ii = el / 16u;
                r = i0 + ii;
                j = k0 + kk;
            }
            var av = 0.0;
            if (r < u.rows && j < u.qn) {
                av = g_at(r, j);
            }
            sm[kk * LDA + ii] = av;
            let bj = el % 64u;
            let bk = el / 64u;
            let k = k0 + bk;
            let jd = j0 + bj;
            var bv = 0.0;
            if (k < nk && jd < u.d) {
                if (TRANS) {
                    bv = e[k * u.d + jd];
                } else {
                    bv = cm[u.c_base + k * u.c_rs + jd];
                }
            }
            sm[B_OFF + bk * LDA + bj] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk++) {
            let bo = B_OFF + kk * LDA + tx;
            let b = vec4<f32>(sm[bo], sm[bo + 16u], sm[bo + 32u], sm[bo + 48u]);
            let ao = kk * LDA + ty;
            acc[0] += sm[ao] * b;
            acc[1] += sm[ao + 16u] * b;
            acc[2] += sm[ao + 32u] * b;
            acc[3] += sm[ao + 48u] * b;
        }
        workgroupBarrier();
    }
    for (var a = 0u; a < 4u; a++) {
        let i = i0 + ty + 16u * a;
        if (i >= ni) {
            continue;
        }
        for (var b = 0u; b < 4u; b++) {
            let jd = j0 + tx + 16u * b;
            if (jd >= u.d) {
                continue;
            }
            let o = u.o_base + i * u.o_rs + jd;
            if (u.acc != 0u) {
                outb[o] = outb[o] + acc[a][b];
            } else {
                outb[o] = acc[a][b];
            }
        }
    }
}
