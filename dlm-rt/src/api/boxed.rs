//! `DlmBox`: one value or array in DLM memory.

use crate::error::Error;
use crate::runtime;
use bytemuck::Zeroable;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Owns a `T` (typically a large array) in DLM memory; dereferences to `&T`/`&mut T`.
/// The memory is freed on drop.
pub struct DlmBox<T: ?Sized> {
    ptr: NonNull<T>,
}

// SAFETY: DlmBox owns its value exclusively, like Box.
unsafe impl<T: ?Sized + Send> Send for DlmBox<T> {}
// SAFETY: shared access only hands out &T, like Box.
unsafe impl<T: ?Sized + Sync> Sync for DlmBox<T> {}

/// Allocates zeroed DLM memory for `bytes` bytes aligned for `align`.
pub(crate) fn allocate_zeroed(bytes: usize, align: usize) -> Result<NonNull<u8>, Error> {
    // DLM blocks start on a DLM page, which is at least the system page.
    assert!(align <= crate::sys::system_page_size(), "alignment {align} exceeds a page");
    runtime::allocate(bytes)
}

impl<T: Zeroable> DlmBox<T> {
    /// A `T` of all zero bytes, built in place (never on the stack).
    pub fn new_zeroed() -> Result<Self, Error> {
        let ptr = allocate_zeroed(size_of::<T>(), align_of::<T>())?;
        Ok(DlmBox { ptr: ptr.cast() })
    }
}

impl<T: Zeroable> DlmBox<[T]> {
    /// `len` zeroed elements.
    pub fn new_zeroed_slice(len: usize) -> Result<Self, Error> {
        let bytes = size_of::<T>().checked_mul(len).expect("slice size overflows usize");
        let ptr = allocate_zeroed(bytes, align_of::<T>())?;
        Ok(DlmBox { ptr: NonNull::slice_from_raw_parts(ptr.cast(), len) })
    }
}

impl<T: Copy> DlmBox<[T]> {
    /// `len` copies of `value`, like `vec![value; len]`.
    pub fn from_elem(value: T, len: usize) -> Result<Self, Error> {
        let bytes = size_of::<T>().checked_mul(len).expect("slice size overflows usize");
        let ptr = allocate_zeroed(bytes, align_of::<T>())?.cast::<T>();
        for i in 0..len {
            // SAFETY: the block holds `len` elements; T: Copy needs no drop of the zero bytes.
            unsafe { ptr.add(i).write(value) };
        }
        Ok(DlmBox { ptr: NonNull::slice_from_raw_parts(ptr, len) })
    }
}

impl<T> DlmBox<T> {
    /// Fills a new `T` with copies of `value`; what `#[dlm] let x = [VALUE; N];` becomes.
    ///
    /// # Safety
    /// `T` must be an array (possibly nested) of `E`.
    #[doc(hidden)]
    pub unsafe fn __filled<E: Copy>(value: E) -> Result<Self, Error> {
        let ptr = allocate_zeroed(size_of::<T>(), align_of::<T>())?;
        let count = size_of::<T>().checked_div(size_of::<E>()).unwrap_or(0);
        let elements = ptr.cast::<E>();
        for i in 0..count {
            // SAFETY: T is `count` E's laid out back to back (the caller's promise).
            unsafe { elements.add(i).write(value) };
        }
        Ok(DlmBox { ptr: ptr.cast() })
    }
}

impl<T: ?Sized> Deref for DlmBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the pointer is valid and initialized for the box's life.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: ?Sized> DerefMut for DlmBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in deref, and &mut self makes the access exclusive.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: ?Sized> Drop for DlmBox<T> {
    fn drop(&mut self) {
        // T is plain data (Zeroable or Copy), so there is nothing to drop in place. After
        // shutdown the DLM range is gone and release does nothing.
        let _ = runtime::release(self.ptr.as_ptr().cast());
    }
}
