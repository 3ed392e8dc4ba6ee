// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Capabilities: the daemon uses none once it serves (its sockets are bound, `/dev/udmabuf` is
//! open), so it drops them all — effective, permitted, inheritable, ambient and the bounding
//! set — even when it runs as root.

use std::io;

use thiserror::Error;

/// Why a capability could not be dropped.
#[derive(Debug, Error)]
pub enum CapsError {
    /// A step failed.
    #[error("{0} failed")]
    Step(&'static str, #[source] io::Error),
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Drop every capability of the calling thread (and of the threads it starts later).
pub fn drop_all() -> Result<(), CapsError> {
    // The bounding set: every capability the kernel knows (PR_CAPBSET_DROP fails with EINVAL
    // past the last one).
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments; the result is checked.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if r != 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINVAL) => break,
                // Without CAP_SETPCAP (an unprivileged daemon) the set cannot shrink, and there
                // is nothing in it to use anyway once the permitted set is empty.
                Some(libc::EPERM) => break,
                _ => return Err(CapsError::Step("PR_CAPBSET_DROP", e)),
            }
        }
    }
    // SAFETY: prctl with integer arguments; checked.
    if unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    } != 0
    {
        return Err(CapsError::Step(
            "PR_CAP_AMBIENT_CLEAR_ALL",
            io::Error::last_os_error(),
        ));
    }
    let hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: capset reads the header and two data structs (version 3), all live locals.
    let r = unsafe { libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) };
    if r != 0 {
        return Err(CapsError::Step("capset", io::Error::last_os_error()));
    }
    Ok(())
}
