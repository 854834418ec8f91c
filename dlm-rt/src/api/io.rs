//! Reading and writing DLM memory with the standard library's I/O traits in any fault mode:
//! in user-only mode the buffer is held resident while the kernel accesses it
//! (`runtime::holds`), a slice at a time.

use crate::pager::KernelAccess;
use crate::runtime::holds::{slice_for, Held};
use bytemuck::Pod;
use std::io::{self, Read, Write};

/// Fills `data` from `reader`, as [`Read::read_exact`] does, holding DLM memory resident while
/// the kernel writes it: the way to read a file into a [`DlmVec`](crate::DlmVec) or a DLM
/// array that works whether or not this user may open `/dev/userfaultfd`.
pub fn read_exact<T: Pod>(reader: &mut impl Read, data: &mut [T]) -> io::Result<()> {
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(data);
    let slice = slice_for(bytes.as_ptr() as usize, bytes.len());
    for chunk in bytes.chunks_mut(slice.unwrap_or(usize::MAX)) {
        let _held = slice.map(|_| Held::new(chunk.as_ptr() as usize, chunk.len(), KernelAccess::Writes));
        reader.read_exact(chunk)?;
    }
    Ok(())
}

/// Writes all of `data` to `writer`, as [`Write::write_all`] does, holding DLM memory resident
/// while the kernel reads it (see [`read_exact`]).
pub fn write_all<T: Pod>(writer: &mut impl Write, data: &[T]) -> io::Result<()> {
    let bytes: &[u8] = bytemuck::cast_slice(data);
    let slice = slice_for(bytes.as_ptr() as usize, bytes.len());
    for chunk in bytes.chunks(slice.unwrap_or(usize::MAX)) {
        let _held = slice.map(|_| Held::new(chunk.as_ptr() as usize, chunk.len(), KernelAccess::Reads));
        writer.write_all(chunk)?;
    }
    Ok(())
}
