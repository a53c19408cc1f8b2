//! The audited boundary: every conversion of a C pointer into a Rust reference happens here.
//!
//! The rest of the crate works on references and slices. Each helper checks for NULL (and, for
//! caller storage, alignment) before it converts; what it cannot check (that the memory is
//! live, large enough, and not used elsewhere during the call) is the C caller's contract,
//! stated on every function in `mitoken.h`.

use core::ffi::c_char;
use core::mem::{align_of, size_of};

use crate::result::mitoken_result;

/// A string or byte string lent by one side to the other: `ptr` and `len` bytes, **not**
/// NUL-terminated. `{NULL, 0}` is the empty (or, for an optional value, absent) string.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct mitoken_str {
    /// First byte, or NULL when `len` is 0.
    pub ptr: *const c_char,
    /// Length in bytes.
    pub len: usize,
}

impl mitoken_str {
    /// `{NULL, 0}`.
    pub const EMPTY: Self = Self {
        ptr: core::ptr::null(),
        len: 0,
    };

    /// Lends `s` to C (valid as long as `s` is).
    pub const fn of(s: &str) -> Self {
        Self {
            ptr: s.as_ptr().cast(),
            len: s.len(),
        }
    }

    /// Lends `s` to C, or `{NULL, 0}` for `None`.
    pub fn of_opt(s: Option<&str>) -> Self {
        s.map_or(Self::EMPTY, Self::of)
    }
}

/// `len` bytes at `ptr`, for reading. NULL is accepted only with `len == 0`.
///
/// # Safety
/// If `ptr` is not NULL it points to `len` readable bytes that are not written during `'a`.
pub unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], mitoken_result> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(mitoken_result::NullArgument)
        };
    }
    if isize::try_from(len).is_err() {
        return Err(mitoken_result::InvalidArgument);
    }
    // SAFETY: not NULL (checked), `len` ≤ isize::MAX (checked), readable and unaliased by
    // writes for 'a (the caller's contract); u8 has alignment 1.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// `len` bytes at `ptr`, for writing. NULL is never accepted.
///
/// # Safety
/// `ptr` points to `len` writable bytes that nothing else reads or writes during `'a`.
pub unsafe fn bytes_mut<'a>(ptr: *mut u8, len: usize) -> Result<&'a mut [u8], mitoken_result> {
    if ptr.is_null() {
        return Err(mitoken_result::NullArgument);
    }
    if isize::try_from(len).is_err() {
        return Err(mitoken_result::InvalidArgument);
    }
    // SAFETY: not NULL (checked), `len` ≤ isize::MAX (checked), writable and exclusive for 'a
    // (the caller's contract); u8 has alignment 1.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// A [`mitoken_str`] as UTF-8 text.
///
/// # Safety
/// As [`bytes`] for `s.ptr` and `s.len`.
pub unsafe fn text<'a>(s: mitoken_str) -> Result<&'a str, mitoken_result> {
    // SAFETY: forwarded contract.
    let b = unsafe { bytes(s.ptr.cast(), s.len) }?;
    core::str::from_utf8(b).map_err(|_| mitoken_result::InvalidUtf8)
}

/// `*ptr` for reading.
///
/// # Safety
/// If not NULL, `ptr` points to a valid, initialised `T` not written during `'a`.
pub unsafe fn get<'a, T>(ptr: *const T) -> Result<&'a T, mitoken_result> {
    if ptr.is_null() {
        return Err(mitoken_result::NullArgument);
    }
    if !ptr.is_aligned() {
        return Err(mitoken_result::Misaligned);
    }
    // SAFETY: not NULL and aligned (checked); valid and unaliased by writes (the contract).
    Ok(unsafe { &*ptr })
}

/// Writes `value` to the out-parameter `ptr`.
///
/// # Safety
/// If not NULL, `ptr` points to memory for a `T` that nothing else uses during the call. What
/// it held before is overwritten without being read or dropped.
pub unsafe fn out<T>(ptr: *mut T, value: T) -> Result<(), mitoken_result> {
    if ptr.is_null() {
        return Err(mitoken_result::NullArgument);
    }
    if !ptr.is_aligned() {
        return Err(mitoken_result::Misaligned);
    }
    // SAFETY: not NULL and aligned (checked); writable and exclusive (the contract).
    unsafe { ptr.write(value) };
    Ok(())
}

/// Caller storage `*ptr` (an opaque array of words, so any content is a valid value).
///
/// # Safety
/// If not NULL, `ptr` points to an `S` that nothing else uses during `'a`.
pub unsafe fn storage<'a, S: Storage>(ptr: *mut S) -> Result<&'a mut S, mitoken_result> {
    if ptr.is_null() {
        return Err(mitoken_result::NullArgument);
    }
    if !ptr.is_aligned() {
        return Err(mitoken_result::Misaligned);
    }
    // SAFETY: not NULL and aligned (checked); exclusive for 'a (the contract); every bit
    // pattern is a valid `S` (`Storage` is implemented only for word arrays).
    Ok(unsafe { &mut *ptr })
}

/// Caller-provided storage for a Rust state: an opaque `repr(C)` array of `u64` words whose
/// first word is a tag saying whether the state is there.
///
/// # Safety
/// Implement only for `repr(C)` structs holding nothing but an array of `u64`.
pub(crate) unsafe trait Storage {
    /// The state kept in the storage (no destructor: storage is reused without dropping).
    type State;
    /// The tag of initialised storage; chosen so that zeroed memory is not initialised.
    const TAG: u64;
    /// The storage's words.
    fn words(&mut self) -> &mut [u64];
}

/// Words before the state: the tag.
const HEADER: usize = size_of::<u64>();

/// Whether `S::State` fits in `S` after the tag word, at an 8-byte alignment.
pub const fn fits<S: Storage>() -> bool {
    size_of::<S::State>() + HEADER <= size_of::<S>()
        && align_of::<S::State>() <= align_of::<u64>()
        && align_of::<S>() >= align_of::<u64>()
        && !core::mem::needs_drop::<S::State>()
}

/// Stores `state` and tags the storage as initialised.
pub fn put<S: Storage>(storage: &mut S, state: S::State) -> &mut S::State {
    const { assert!(fits::<S>()) };
    let words = storage.words();
    if let Some(tag) = words.first_mut() {
        *tag = S::TAG;
    }
    let at = words.as_mut_ptr().wrapping_add(1).cast::<S::State>();
    // SAFETY: `at` lies inside `storage` (one word in, `fits` checked the size), is aligned to
    // 8 ≥ align_of::<State>() (`fits`), and `storage` is borrowed mutably; `State` has no
    // destructor (`fits`), so overwriting what was there leaks nothing.
    unsafe { at.write(state) };
    // SAFETY: just written; the borrow of `storage` bounds the returned one.
    unsafe { &mut *at }
}

/// The state in `storage`, if it was stored by [`put`] and not cleared.
pub fn state<S: Storage>(storage: &mut S) -> Option<&mut S::State> {
    const { assert!(fits::<S>()) };
    let words = storage.words();
    if words.first() != Some(&S::TAG) {
        return None;
    }
    let at = words.as_mut_ptr().wrapping_add(1).cast::<S::State>();
    // SAFETY: the tag says `put` wrote a `State` here (a C caller can copy the storage whole,
    // which copies a valid `State` too); in bounds and aligned as in `put`; exclusive through
    // the borrow of `storage`.
    Some(unsafe { &mut *at })
}
