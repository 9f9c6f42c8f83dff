//! A compute-shader copy for benchmarks: the bandwidth a memory-bound kernel can reach on a
//! device through wgpu. `copy_buffer_to_buffer` is not used: on some GPUs (NVIDIA) it runs
//! on copy engines far below the shader cores' bandwidth.

use std::time::Instant;

use super::GpuDevice;
use crate::error::Result;

const COPY_WGSL: &str = "
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = arrayLength(&src);
    let step = nwg.x * 256u;
    for (var i = gid.x; i < n; i += step) {
        dst[i] = src[i];
    }
}
";

/// Two device buffers and a copy pipeline (vec4 loads and stores, grid-stride loop).
pub struct CopyProbe {
    pipe: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    groups: u32,
    /// Bytes one [`CopyProbe::run`] reads (and as many it writes).
    pub bytes: u64,
    _bufs: (wgpu::Buffer, wgpu::Buffer),
}

impl CopyProbe {
    /// A probe copying `bytes` (rounded down to 16, at least 16, at most the largest
    /// binding and buffer).
    pub fn new(dev: &GpuDevice, bytes: u64) -> Self {
        let max = dev.limits().max_buffer_size.min(dev.max_binding_bytes());
        let len = bytes.clamp(16, max.max(16)) & !15;
        let mk = |label| {
            dev.raw().create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: len,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        };
        let (a, b) = (mk("copy probe src"), mk("copy probe dst"));
        let module = dev
            .raw()
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("copy probe"),
                source: wgpu::ShaderSource::Wgsl(COPY_WGSL.into()),
            });
        let pipe = dev
            .raw()
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("copy probe"),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        let bind = dev.raw().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("copy probe"),
            layout: &pipe.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: a.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: b.as_entire_binding(),
                },
            ],
        });
        let groups = (len / 16).div_ceil(256).clamp(1, 8192) as u32;
        CopyProbe {
            pipe,
            bind,
            groups,
            bytes: len,
            _bufs: (a, b),
        }
    }

    /// Seconds of `times` copies in one submission, waited for.
    pub fn run(&self, dev: &GpuDevice, times: u32) -> Result<f64> {
        let t0 = Instant::now();
        let mut enc = dev
            .raw()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipe);
            pass.set_bind_group(0, &self.bind, &[]);
            for _ in 0..times.max(1) {
                pass.dispatch_workgroups(self.groups, 1, 1);
            }
        }
        dev.submit_wait(vec![enc.finish()])?;
        Ok(t0.elapsed().as_secs_f64())
    }
}
