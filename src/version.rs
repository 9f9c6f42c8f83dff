//! The library and C ABI versions (the header's version macros, the plugin host's checks).

/// Major version of losskit.
pub const LK_VERSION_MAJOR: u32 = 0;
/// Minor version of losskit.
pub const LK_VERSION_MINOR: u32 = 1;
/// Patch version of losskit.
pub const LK_VERSION_PATCH: u32 = 0;
/// MAJOR * 1000000 + MINOR * 1000 + PATCH, compare with lk_version_number().
pub const LK_VERSION_NUMBER: u32 =
    LK_VERSION_MAJOR * 1_000_000 + LK_VERSION_MINOR * 1_000 + LK_VERSION_PATCH;
/// Bumped on every breaking change of the C ABI; compare with lk_abi_version().
pub const LK_ABI_VERSION: u32 = 0;
