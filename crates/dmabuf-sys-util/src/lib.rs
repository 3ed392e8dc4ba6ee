// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Host system helpers shared by the daemon (`vhost-device-dmabuf`), the client library
//! (`dmabuf-client`) and the test harness, so that each system call wrapper exists once and a
//! host program can use them without linking vhost.
//!
//! * [`dma_buf`] — Linux's dma-buf CPU-access bracket (`DMA_BUF_IOCTL_SYNC`);
//! * [`fds`] — `RLIMIT_NOFILE`, and receiving an fd such that one the kernel dropped is seen;
//! * [`memfd`] — memfds sealed against shrinking, the only files the daemon maps;
//! * [`random`] — random bytes from the kernel (`getrandom(2)`), without opening a file;
//! * [`size`] — byte sizes as command lines write them (`4096`, `0x1000`, `8K`, `2G`);
//! * [`report`] — an error and its causes as one line.

pub mod dma_buf;
pub mod fds;
pub mod memfd;
pub mod random;
pub mod report;
pub mod size;
