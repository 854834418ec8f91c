//! `DlmStatic`: what `#[dlm] static NAME: [T; N];` becomes. The array is allocated in DLM
//! memory on first use and reached through guards that deref to the array type.

use crate::runtime;
use bytemuck::Zeroable;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicIsize, AtomicPtr, Ordering};
use std::sync::Mutex;

/// A static array in DLM memory. `.read()` and `.write()` give guards that deref to `T`;
/// a write guard excludes every other guard, and breaking that rule panics.
pub struct DlmStatic<T: 'static> {
    name: &'static str,
    init: Option<&'static T>,
    ptr: AtomicPtr<T>,
    /// Number of live read guards, or -1 while a write guard lives.
    borrows: AtomicIsize,
    allocating: Mutex<()>,
}

// SAFETY: access to the value goes through the borrow counter, like RwLock<T>.
unsafe impl<T: Send + Sync> Sync for DlmStatic<T> {}

impl<T: Zeroable> DlmStatic<T> {
    /// A static whose value starts as all zero bytes.
    pub const fn zeroed(name: &'static str) -> Self {
        Self::new(name, None)
    }
}

impl<T> DlmStatic<T> {
    /// What `#[dlm]` declares: [`DlmStatic::zeroed`] without the bound, which the macro checks
    /// itself at the user's type (or has reported an error for).
    ///
    /// # Safety
    /// All zero bytes must be a valid `T`.
    #[doc(hidden)]
    pub const unsafe fn __zeroed_unchecked(name: &'static str) -> Self {
        Self::new(name, None)
    }
}

impl<T: Copy> DlmStatic<T> {
    /// A static whose value starts as a copy of `init`.
    pub const fn with_init(name: &'static str, init: &'static T) -> Self {
        Self::new(name, Some(init))
    }
}

impl<T> DlmStatic<T> {
    const fn new(name: &'static str, init: Option<&'static T>) -> Self {
        DlmStatic {
            name,
            init,
            ptr: AtomicPtr::new(std::ptr::null_mut()),
            borrows: AtomicIsize::new(0),
            allocating: Mutex::new(()),
        }
    }

    /// Shared access. Panics while a write guard is alive.
    pub fn read(&self) -> DlmReadGuard<'_, T> {
        let ptr = self.get();
        let taken = self.borrows.fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| (n >= 0).then_some(n + 1));
        if taken.is_err() {
            panic!("{}.read() while a write guard of {} is alive", self.name, self.name);
        }
        DlmReadGuard { owner: self, ptr }
    }

    /// Exclusive access. Panics while any other guard is alive.
    pub fn write(&self) -> DlmWriteGuard<'_, T> {
        let ptr = self.get();
        if self.borrows.compare_exchange(0, -1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            panic!("{}.write() while another guard of {} is alive", self.name, self.name);
        }
        DlmWriteGuard { owner: self, ptr }
    }

    /// The value's address, allocating and initialising it on first use.
    fn get(&self) -> *mut T {
        if !runtime::is_running() {
            panic!("{}: DLM is not running; put #[dlm::main] on main (or call dlm::start())", self.name);
        }
        let ptr = self.ptr.load(Ordering::Acquire);
        if !ptr.is_null() {
            return ptr;
        }
        let _only_one = self.allocating.lock().unwrap_or_else(|e| e.into_inner());
        let ptr = self.ptr.load(Ordering::Acquire);
        if !ptr.is_null() {
            return ptr;
        }
        let block = super::boxed::allocate_zeroed(size_of::<T>(), align_of::<T>())
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
            .cast::<T>();
        if let Some(init) = self.init {
            // SAFETY: the fresh block holds one T and does not overlap the initializer.
            unsafe { block.as_ptr().copy_from_nonoverlapping(init, 1) };
        }
        self.ptr.store(block.as_ptr(), Ordering::Release);
        block.as_ptr()
    }
}

/// Shared access to a [`DlmStatic`]; derefs to `T`.
pub struct DlmReadGuard<'a, T: 'static> {
    owner: &'a DlmStatic<T>,
    ptr: *mut T,
}

impl<T> Deref for DlmReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the value is allocated and no write guard exists while this guard lives.
        unsafe { &*self.ptr }
    }
}

impl<T> Drop for DlmReadGuard<'_, T> {
    fn drop(&mut self) {
        self.owner.borrows.fetch_sub(1, Ordering::Release);
    }
}

/// Exclusive access to a [`DlmStatic`]; derefs to `T`.
pub struct DlmWriteGuard<'a, T: 'static> {
    owner: &'a DlmStatic<T>,
    ptr: *mut T,
}

impl<T> Deref for DlmWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the value is allocated and this is the only guard.
        unsafe { &*self.ptr }
    }
}

impl<T> DerefMut for DlmWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in deref; &mut self makes the access exclusive.
        unsafe { &mut *self.ptr }
    }
}

impl<T> Drop for DlmWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.owner.borrows.store(0, Ordering::Release);
    }
}
