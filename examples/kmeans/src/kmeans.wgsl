// k-means on the GPU: `assign` gives each point its nearest center and sums
// the points of each cluster per workgroup; `update` adds those partial sums
// and moves the centers. Sums stay on the GPU between passes.

struct Params {
    n: u32,
    k: u32,
    groups: u32,
    _pad: u32,
}

const WG: u32 = 256u;
const MAX_K: u32 = 32u;

@group(0) @binding(0) var<storage, read> points: array<vec2<f32>>;
@group(0) @binding(1) var<storage, read_write> centers: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> codes: array<u32>;
@group(0) @binding(3) var<storage, read_write> partials: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> changed: atomic<u32>;
@group(0) @binding(5) var<uniform> params: Params;

var<workgroup> sums: array<vec3<f32>, WG>;

@compute @workgroup_size(256)
fn assign(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let n = params.n;
    let k = params.k;
    var local: array<vec3<f32>, MAX_K>;
    for (var c = 0u; c < k; c++) {
        local[c] = vec3<f32>(0.0);
    }
    var changes = 0u;
    let stride = params.groups * WG;
    for (var i = wid.x * WG + lid.x; i < n; i += stride) {
        let p = points[i];
        var best = 0u;
        var best_d = 3.4e38;
        for (var c = 0u; c < k; c++) {
            let dx = p.x - centers[c].x;
            let dy = p.y - centers[c].y;
            let d = dx * dx + dy * dy;
            if (d < best_d) {
                best_d = d;
                best = c;
            }
        }
        if (codes[i] != best) {
            codes[i] = best;
            changes += 1u;
        }
        local[best] += vec3<f32>(p, 1.0);
    }
    if (changes > 0u) {
        atomicAdd(&changed, changes);
    }
    for (var c = 0u; c < k; c++) {
        sums[lid.x] = local[c];
        workgroupBarrier();
        for (var s = WG / 2u; s > 0u; s >>= 1u) {
            if (lid.x < s) {
                sums[lid.x] += sums[lid.x + s];
            }
            workgroupBarrier();
        }
        if (lid.x == 0u) {
            // The count travels as u32 bits: exact however many points.
            partials[wid.x * k + c] = vec4<f32>(sums[0].xy, 0.0, bitcast<f32>(u32(sums[0].z)));
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(32)
fn update(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= params.k) {
        return;
    }
    var s = vec2<f32>(0.0);
    var count = 0u;
    for (var g = 0u; g < params.groups; g++) {
        let p = partials[g * params.k + c];
        s += p.xy;
        count += bitcast<u32>(p.w);
    }
    if (count > 0u) {
        centers[c] = s / f32(count);
    }
}
