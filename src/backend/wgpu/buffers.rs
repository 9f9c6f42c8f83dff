//! Device buffers: the pool of scratch buffers, uploads and readbacks, bound windows, and the
//! device-resident buffers of the public API.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::GpuDevice;
use crate::error::Result;
use crate::{bail, err};

/// Usage of every scratch and public buffer: storage, copy source and destination.
pub const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);
/// Usage of readback staging buffers.
pub const READBACK: wgpu::BufferUsages =
    wgpu::BufferUsages::MAP_READ.union(wgpu::BufferUsages::COPY_DST);
/// Usage of uniform blocks.
pub const UNIFORM: wgpu::BufferUsages =
    wgpu::BufferUsages::UNIFORM.union(wgpu::BufferUsages::COPY_DST);

/// Most bytes the pool keeps for reuse.
const POOL_MAX_BYTES: u64 = 1 << 30;
/// Most buffers kept per size class.
const POOL_PER_CLASS: usize = 4;

/// A pool of scratch buffers in size classes (a power of two split in eight steps), so
/// repeated calls of similar size reuse buffers instead of allocating.
#[derive(Default)]
pub struct BufferPool {
    /// Free buffers by (size class, usage bits), and their total bytes.
    free: Mutex<(FreeLists, u64)>,
    /// Bytes of pooled buffers currently taken (in use by a computation).
    in_use: AtomicU64,
    /// Largest `in_use` since the last [`BufferPool::reset_peak`].
    peak: AtomicU64,
}

type FreeLists = HashMap<(u64, u32), Vec<wgpu::Buffer>>;

fn size_class(bytes: u64, max: u64) -> u64 {
    let b = bytes.max(256);
    let p = b.next_power_of_two();
    let step = (p / 8).max(4);
    let c = b.div_ceil(step) * step;
    if c > max { bytes.div_ceil(4) * 4 } else { c }
}

/// A buffer taken from the pool; returned to it on drop.
pub struct Pooled<'a> {
    buf: Option<wgpu::Buffer>,
    pool: &'a BufferPool,
    key: (u64, u32),
}

impl Pooled<'_> {
    /// The buffer.
    pub fn buf(&self) -> &wgpu::Buffer {
        self.buf.as_ref().expect("pooled buffer present until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        self.pool.in_use.fetch_sub(self.key.0, Ordering::Relaxed);
        if let Some(b) = self.buf.take() {
            if let Ok(mut g) = self.pool.free.lock() {
                let (map, total) = &mut *g;
                let v = map.entry(self.key).or_default();
                if v.len() < POOL_PER_CLASS && *total + self.key.0 <= POOL_MAX_BYTES {
                    *total += self.key.0;
                    v.push(b);
                }
            }
        }
    }
}

impl BufferPool {
    /// A buffer of at least `bytes` with `usage`, reused when one is free.
    pub fn take<'a>(
        &'a self,
        dev: &GpuDevice,
        bytes: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<Pooled<'a>> {
        let size = size_class(bytes, dev.limits.max_buffer_size);
        if size > dev.limits.max_buffer_size {
            bail!(
                OutOfMemory,
                "a {bytes}-byte buffer exceeds the device's largest buffer ({} bytes)",
                dev.limits.max_buffer_size
            );
        }
        let key = (size, usage.bits());
        let now = self.in_use.fetch_add(size, Ordering::Relaxed) + size;
        self.peak.fetch_max(now, Ordering::Relaxed);
        if let Ok(mut g) = self.free.lock() {
            let (map, total) = &mut *g;
            if let Some(b) = map.get_mut(&key).and_then(|v| v.pop()) {
                *total -= size;
                return Ok(Pooled {
                    buf: Some(b),
                    pool: self,
                    key,
                });
            }
        }
        let b = dev.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("losskit scratch"),
            size,
            usage,
            mapped_at_creation: false,
        });
        Ok(Pooled {
            buf: Some(b),
            pool: self,
            key,
        })
    }
    /// Most bytes of scratch buffers in use at once since the last [`BufferPool::reset_peak`]
    /// (device memory the library itself needed, beyond the caller's tensors; wgpu's own
    /// staging for host uploads is not counted).
    pub fn peak_bytes(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
    /// Start a new peak measurement from the bytes in use now.
    pub fn reset_peak(&self) {
        self.peak
            .store(self.in_use.load(Ordering::Relaxed), Ordering::Relaxed);
    }
    /// Bytes currently kept for reuse.
    pub fn cached_bytes(&self) -> u64 {
        self.free.lock().map(|g| g.1).unwrap_or(0)
    }
}

/// A range of a buffer to bind: the window starts at an offset the device accepts, and
/// `base` is the index (in 4-byte words) of the first element inside the window.
#[derive(Clone, Copy, Debug)]
pub struct Window<'b> {
    /// The buffer.
    pub buffer: &'b wgpu::Buffer,
    /// Byte offset of the window (a multiple of the storage offset alignment).
    pub offset: u64,
    /// Byte size of the window (a multiple of 4).
    pub size: u64,
    /// Word index of the first wanted element inside the window.
    pub base: u32,
}

impl<'b> Window<'b> {
    /// The bytes `[start, start + len)` of `buffer`, widened to an aligned start.
    pub fn new(dev: &GpuDevice, buffer: &'b wgpu::Buffer, start: u64, len: u64) -> Self {
        let align = dev.limits.min_storage_buffer_offset_alignment.max(4) as u64;
        let offset = start / align * align;
        let size = ((start - offset + len).div_ceil(4) * 4).max(4);
        let size = size.min(buffer.size() - offset);
        Window {
            buffer,
            offset,
            size,
            base: ((start - offset) / 4) as u32,
        }
    }
    /// The whole of a (small) buffer.
    pub fn whole(buffer: &'b wgpu::Buffer) -> Self {
        Window {
            buffer,
            offset: 0,
            size: buffer.size(),
            base: 0,
        }
    }
    /// As a bind-group resource.
    pub fn resource(&self) -> wgpu::BindingResource<'b> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer,
            offset: self.offset,
            size: wgpu::BufferSize::new(self.size),
        })
    }
}

/// Bytes of alignment slack a window may add in front of its data.
pub fn window_slack(dev: &GpuDevice) -> u64 {
    dev.limits.min_storage_buffer_offset_alignment.max(4) as u64
}

/// Upload `data` into a pooled storage buffer (at least 4 bytes).
pub fn upload<'a>(dev: &'a GpuDevice, data: &[u8]) -> Result<Pooled<'a>> {
    let p = dev.pool.take(dev, (data.len() as u64).max(4), STORAGE)?;
    write_padded(dev, p.buf(), 0, data);
    Ok(p)
}

/// `queue.write_buffer` with the length padded to a multiple of 4.
pub fn write_padded(dev: &GpuDevice, buf: &wgpu::Buffer, offset: u64, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    if data.len().is_multiple_of(4) {
        dev.queue.write_buffer(buf, offset, data);
    } else {
        let mut v = data.to_vec();
        v.resize(data.len().div_ceil(4) * 4, 0);
        dev.queue.write_buffer(buf, offset, &v);
    }
}

/// A uniform buffer holding `data` (a fresh small buffer each time: uniforms are tiny).
pub fn uniform(dev: &GpuDevice, data: &[u8]) -> wgpu::Buffer {
    let b = dev.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("losskit uniform"),
        size: (data.len() as u64).div_ceil(16) * 16,
        usage: UNIFORM,
        mapped_at_creation: false,
    });
    write_padded(dev, &b, 0, data);
    b
}

/// Copies `(buffer, byte offset, destination)` recorded into `enc`, then submit, wait and
/// copy the bytes into the destinations (lengths must be multiples of 4).
pub fn submit_and_read(
    dev: &GpuDevice,
    mut enc: wgpu::CommandEncoder,
    reads: &mut [(&wgpu::Buffer, u64, &mut [u8])],
) -> Result<()> {
    let total: u64 = reads
        .iter()
        .map(|r| (r.2.len() as u64).div_ceil(4) * 4)
        .sum();
    if total == 0 {
        return dev.submit_wait(vec![enc.finish()]);
    }
    let staging = dev.pool.take(dev, total, READBACK)?;
    let mut at = 0u64;
    for (src, off, dst) in reads.iter() {
        let n = (dst.len() as u64).div_ceil(4) * 4;
        if n > 0 {
            enc.copy_buffer_to_buffer(src, *off, staging.buf(), at, n);
        }
        at += n;
    }
    dev.submit_wait(vec![enc.finish()])?;
    let slice = staging.buf().slice(0..total);
    let state: Arc<Mutex<Option<std::result::Result<(), wgpu::BufferAsyncError>>>> =
        Arc::new(Mutex::new(None));
    let s2 = state.clone();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        if let Ok(mut g) = s2.lock() {
            *g = Some(r);
        }
    });
    // The map callback runs inside whichever thread polls the device next: with several
    // threads on one device another thread's poll may run it after ours returns, so poll
    // until our callback has run (bounded, never forever).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mapped = loop {
        dev.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| err!(Gpu, "wgpu: waiting for a readback failed: {e}"))?;
        if let Some(r) = state.lock().ok().and_then(|mut g| g.take()) {
            break Some(r);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::yield_now();
    };
    match mapped {
        Some(Ok(())) => {}
        Some(Err(e)) => bail!(Gpu, "wgpu: mapping a readback buffer failed: {e}"),
        None => bail!(Gpu, "wgpu: a readback buffer was not mapped"),
    }
    {
        let view = slice
            .get_mapped_range()
            .map_err(|e| err!(Gpu, "wgpu: reading a mapped buffer failed: {e:?}"))?;
        let mut at = 0usize;
        for (_, _, dst) in reads.iter_mut() {
            let n = dst.len();
            dst.copy_from_slice(&view[at..at + n]);
            at += n.div_ceil(4) * 4;
        }
    }
    staging.buf().unmap();
    Ok(())
}

/// The device side of a public device buffer.
pub struct BufInner {
    pub(crate) buf: wgpu::Buffer,
    pub(crate) size: u64,
    pub(crate) dev: Arc<GpuDevice>,
}

/// Create a device-resident buffer of `n_bytes` (rounded up to a multiple of 4).
pub fn create(dev: &Arc<GpuDevice>, n_bytes: u64) -> Result<Arc<BufInner>> {
    if n_bytes > dev.limits.max_buffer_size {
        bail!(
            OutOfMemory,
            "a {n_bytes}-byte buffer exceeds the device's largest buffer ({} bytes)",
            dev.limits.max_buffer_size
        );
    }
    let size = (n_bytes.div_ceil(4) * 4).max(4);
    let buf = dev.scoped("lk_buffer_create", || {
        Ok(dev.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("lk_buffer"),
            size,
            usage: STORAGE,
            mapped_at_creation: false,
        }))
    })?;
    Ok(Arc::new(BufInner {
        buf,
        size: n_bytes,
        dev: dev.clone(),
    }))
}

fn check_range(what: &str, size: u64, offset: u64, len: usize) -> Result<()> {
    if !offset.is_multiple_of(4) || !len.is_multiple_of(4) {
        bail!(
            InvalidArg,
            "{what}: offset {offset} and length {len} must be multiples of 4 bytes"
        );
    }
    if offset.checked_add(len as u64).is_none_or(|e| e > size) {
        bail!(
            InvalidArg,
            "{what}: bytes [{offset}, {offset} + {len}) are outside the {size}-byte buffer"
        );
    }
    Ok(())
}

impl crate::device::DeviceMemory for BufInner {
    fn size(&self) -> u64 {
        self.size
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<()> {
        BufInner::write(self, offset, data)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<()> {
        BufInner::read(self, offset, out)
    }
}

/// The wgpu buffer behind a [`crate::device::DeviceBuffer`] (every device buffer is made by
/// this backend: [`create`]).
pub trait WgpuBuffer {
    /// The shared buffer.
    fn wgpu(&self) -> Arc<BufInner>;
    /// A reference to the buffer.
    fn wgpu_ref(&self) -> &BufInner;
}

impl WgpuBuffer for crate::device::DeviceBuffer {
    fn wgpu(&self) -> Arc<BufInner> {
        self.memory_as::<BufInner>()
            .expect("every device buffer is a wgpu buffer")
    }
    fn wgpu_ref(&self) -> &BufInner {
        self.memory_ref::<BufInner>()
            .expect("every device buffer is a wgpu buffer")
    }
}

impl BufInner {
    /// Copy `data` into the buffer at `offset` (visible to every later compute).
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<()> {
        check_range("lk_buffer_write", self.size, offset, data.len())?;
        self.dev.scoped("lk_buffer_write", || {
            write_padded(&self.dev, &self.buf, offset, data);
            Ok(())
        })
    }
    /// Copy bytes at `offset` out of the buffer (waits for earlier computes).
    pub fn read(&self, offset: u64, out: &mut [u8]) -> Result<()> {
        check_range("lk_buffer_read", self.size, offset, out.len())?;
        if out.is_empty() {
            return Ok(());
        }
        let dev = &self.dev;
        dev.scoped("lk_buffer_read", || {
            let enc = dev
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
            submit_and_read(dev, enc, &mut [(&self.buf, offset, out)])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_round_up_within_an_eighth() {
        assert_eq!(size_class(1, u64::MAX), 256);
        assert_eq!(size_class(1000, u64::MAX), 1024);
        let b = 100_000_000u64;
        let c = size_class(b, u64::MAX);
        assert!(c >= b && c - b <= b / 4);
        // Never above the device maximum.
        assert_eq!(size_class(2_000_000_000, 2_147_483_647), 2_000_000_000);
    }
}
