//! How DLM memory is laid out and counted: the big blocks of the DLM range within the limit
//! (local budget + the servers' capacity) in `blocks` ([`Heap`]), and the small-block heap's
//! arena at the range's end in `arena` (its layout, and the DLM pages under it charged against
//! the same limit). Plain data that the runtime owns; mimalloc's side of the arena is
//! `abi::small`.

pub mod arena;
mod blocks;

pub use blocks::Heap;
