// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Host client of the dma-buf daemon's control socket (`docs/control-protocol.md`), and the
//! library behind `dmabufctl`.
//!
//! The library depends on the wire-format crate and the shared system helpers only (no vhost, no
//! command-line parser): `dmabufctl` is a separate target of this package, built with the
//! default `cli` feature (`default-features = false` leaves it and clap out).
//!
//! ```no_run
//! use dmabuf_client::{Access, Client, ShareFlags};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), dmabuf_client::ClientError> {
//! let mut c = Client::connect("/run/vhost-device-dmabuf/control.sock")?;
//! let (uuid, _memfd) = c.share_bytes(b"hello, guests", ShareFlags::default(), &[])?;
//! println!("{}", dmabuf_client::format_uuid(&uuid));
//! c.write_fenced(&uuid, 0, b"HELLO", Some(Duration::from_secs(1)))?;
//! let bytes = c.read_fenced(&uuid, 0, 13, None)?;
//! assert_eq!(&bytes, b"HELLO, guests");
//! c.begin(&uuid, 0, 5, Access::Read, None)?;
//! let first = c.read(&uuid, 0, 5)?;
//! c.end(&uuid, 0, 5, Access::Read)?;
//! # let _ = first;
//! # Ok(())
//! # }
//! ```
//!
//! Each [`Client`] is one connection and one arbitration domain: CPU access is bracketed with
//! [`Client::begin`] / [`Client::end`] exactly as a guest brackets it with SYNC START / END, and
//! READ, READ_INTO and WRITE are only served inside a held range. Closing the connection releases
//! everything it held and cancels what it waited for; buffers it shared stay until revoked.
//!
//! # Test pattern and checksum
//!
//! The [`pattern`] module defines the data the Rust tests, the VM suite and the guest C tool
//! write and check. Both functions are defined on byte positions within the buffer and use
//! wrapping unsigned 64-bit arithmetic, so the guest tool's C (`uint64_t`) gives the same bytes:
//!
//! * `pattern_byte(seed, i) = (i * 131 + seed * 7 + (i >> 12)) & 0xff`, where `i` is the byte's
//!   offset in the buffer (not in the transfer) and `seed` a u32;
//! * `fnv1a64(bytes)`: FNV-1a, 64 bit — `h = 0xcbf29ce484222325`, then for each byte
//!   `h = (h ^ byte) * 0x100000001b3`. `dmabufctl read --crc` prints it as
//!   `fnv1a64=<16 hex digits> len=<bytes>`.

pub mod client;
pub mod error;
pub mod mapping;
pub mod pattern;
pub mod types;

pub use client::{Client, Reply};
/// The dma-buf CPU-access bracket and sealed memfds, from the helpers the daemon uses too.
pub use dmabuf_sys_util::{dma_buf, memfd};
pub use error::{status_hint, ArgumentError, ClientError, ProtocolError};
pub use types::{Access, BufferFlags, BufferInfo, Importer, ShareFlags};
pub use virtio_dmabuf_proto::control::MAX_PAYLOAD;
pub use virtio_dmabuf_proto::virtio::Uuid;
pub use virtio_dmabuf_proto::Status;

/// Format a UUID as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub fn format_uuid(u: &Uuid) -> String {
    virtio_dmabuf_proto::uuid::format(u)
}

/// Parse a UUID's text form (hyphens optional, either case).
pub fn parse_uuid(s: &str) -> Option<Uuid> {
    virtio_dmabuf_proto::uuid::parse(s)
}
