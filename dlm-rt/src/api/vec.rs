//! `DlmVec`: a growable vector of `Copy` elements in DLM memory.

use super::boxed::allocate_zeroed;
use crate::error::Error;
use crate::runtime;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// A vector in DLM memory; dereferences to `[T]`. Growing moves the elements to a new block.
pub struct DlmVec<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    capacity: usize,
}

// SAFETY: DlmVec owns its elements exclusively, like Vec.
unsafe impl<T: Copy + Send> Send for DlmVec<T> {}
// SAFETY: shared access only hands out &[T], like Vec.
unsafe impl<T: Copy + Sync> Sync for DlmVec<T> {}

impl<T: Copy> DlmVec<T> {
    /// An empty vector with room for `capacity` elements.
    pub fn with_capacity(capacity: usize) -> Result<Self, Error> {
        let bytes = size_of::<T>().checked_mul(capacity.max(1)).expect("capacity overflows usize");
        let ptr = allocate_zeroed(bytes, align_of::<T>())?.cast();
        Ok(DlmVec { ptr, len: 0, capacity: capacity.max(1) })
    }

    /// `len` copies of `value`, like `vec![value; len]`.
    pub fn from_elem(value: T, len: usize) -> Result<Self, Error> {
        let mut v = Self::with_capacity(len)?;
        for i in 0..len {
            // SAFETY: i < capacity.
            unsafe { v.ptr.add(i).write(value) };
        }
        v.len = len;
        Ok(v)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends `value`, doubling the capacity when full.
    pub fn push(&mut self, value: T) -> Result<(), Error> {
        if self.len == self.capacity {
            self.reserve(1)?;
        }
        // SAFETY: len < capacity after reserve.
        unsafe { self.ptr.add(self.len).write(value) };
        self.len += 1;
        Ok(())
    }

    pub fn extend_from_slice(&mut self, values: &[T]) -> Result<(), Error> {
        self.reserve(values.len())?;
        // SAFETY: there is room for values.len() more; the source is ordinary memory or another block.
        unsafe { self.ptr.add(self.len).copy_from_nonoverlapping(NonNull::from(values).cast(), values.len()) };
        self.len += values.len();
        Ok(())
    }

    /// Makes room for `additional` more elements.
    pub fn reserve(&mut self, additional: usize) -> Result<(), Error> {
        let needed = self.len.checked_add(additional).expect("length overflows usize");
        if needed <= self.capacity {
            return Ok(());
        }
        let mut grown = Self::with_capacity(needed.max(self.capacity * 2))?;
        // SAFETY: both blocks hold at least len elements and are distinct.
        unsafe { grown.ptr.copy_from_nonoverlapping(self.ptr, self.len) };
        grown.len = self.len;
        *self = grown;
        Ok(())
    }
}

impl<T: Copy> Deref for DlmVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the first len elements are initialized.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> DerefMut for DlmVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref, with exclusive access through &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Drop for DlmVec<T> {
    fn drop(&mut self) {
        let _ = runtime::release(self.ptr.as_ptr().cast());
    }
}
