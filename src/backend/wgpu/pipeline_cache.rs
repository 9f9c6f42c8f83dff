//! Compute pipelines cached by a hashable key.
//!
//! The key names the kernel (an id plus a hash of the full source, so two sources can never
//! share an entry), the entry point, the workgroup size and the sorted override constants.
//! Shapes are never part of it: they travel in uniforms. A lookup that misses builds the
//! pipeline while holding the lock, so concurrent first uses build it exactly once.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::GpuDevice;
use crate::error::Result;

/// What identifies a compute pipeline.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    /// Kernel id, e.g. `rowwise/cross_entropy` or `plugin/<loss id>`.
    pub kernel: String,
    /// Hash of the complete WGSL source.
    pub source_hash: u64,
    /// Entry point.
    pub entry: String,
    /// Workgroup size (x).
    pub workgroup_size: u32,
    /// Override constants as `(name, f64 bits)`, sorted by name.
    pub overrides: Vec<(String, u64)>,
}

impl PipelineKey {
    /// A key for `source`'s `entry`, with override constants (any order).
    pub fn new(
        kernel: &str,
        source: &str,
        entry: &str,
        workgroup_size: u32,
        overrides: &[(&str, f64)],
    ) -> Self {
        let mut h = DefaultHasher::new();
        source.hash(&mut h);
        let mut ov: Vec<(String, u64)> = overrides
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_bits()))
            .collect();
        ov.sort();
        PipelineKey {
            kernel: kernel.to_string(),
            source_hash: h.finish(),
            entry: entry.to_string(),
            workgroup_size,
            overrides: ov,
        }
    }
}

/// The pipelines of one device.
#[derive(Default)]
pub struct PipelineCache {
    map: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
    builds: AtomicUsize,
}

impl PipelineCache {
    /// Number of cached pipelines.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// How many pipelines were built (misses) since the device was created.
    pub fn builds(&self) -> usize {
        self.builds.load(Ordering::Relaxed)
    }

    /// The pipeline for `key`, built from `source` on a miss. The workgroup size is passed
    /// as the override constant `LK_WG` when the source declares it. Compilation errors are
    /// [`crate::ErrorKind::Gpu`] with naga's message.
    pub fn get(
        &self,
        dev: &GpuDevice,
        key: &PipelineKey,
        source: &str,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        self.get_with_layout(dev, key, source, None)
    }

    /// As [`PipelineCache::get`], with an explicit pipeline layout (needed when one bind
    /// group serves several entry points). A key must always come with the same layout.
    pub fn get_with_layout(
        &self,
        dev: &GpuDevice,
        key: &PipelineKey,
        source: &str,
        layout: Option<&wgpu::PipelineLayout>,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let mut map = match self.map.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if let Some(p) = map.get(key) {
            return Ok(p.clone());
        }
        super::launch::check_workgroup(dev, key.workgroup_size)?;
        let p = dev.scoped(
            &format!("building kernel {}:{}", key.kernel, key.entry),
            || {
                let module = dev
                    .device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(&key.kernel),
                        source: wgpu::ShaderSource::Wgsl(source.into()),
                    });
                let mut consts: Vec<(&str, f64)> = key
                    .overrides
                    .iter()
                    .map(|(n, b)| (n.as_str(), f64::from_bits(*b)))
                    .collect();
                if source.contains("override LK_WG") {
                    consts.push(("LK_WG", key.workgroup_size as f64));
                }
                Ok(dev
                    .device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(&key.kernel),
                        layout,
                        module: &module,
                        entry_point: Some(&key.entry),
                        compilation_options: wgpu::PipelineCompilationOptions {
                            constants: &consts,
                            zero_initialize_workgroup_memory: false,
                        },
                        cache: None,
                    }))
            },
        )?;
        let p = Arc::new(p);
        self.builds.fetch_add(1, Ordering::Relaxed);
        map.insert(key.clone(), p.clone());
        Ok(p)
    }
}
