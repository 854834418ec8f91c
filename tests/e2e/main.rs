//! End-to-end tests of DLM: real programs, real userfaultfd, real MPI memory servers.
//! Build first: `cargo build --release --workspace --examples` (scripts/test.sh does both).

mod attributes;
mod bad_input;
mod cluster;
mod dlmcc;
mod doctor;
mod exits;
mod free_anywhere;
mod install;
mod kernel_io;
mod legacy_programs;
mod paging;
mod pool;
mod portal;
mod reliability;
mod rewriting;
mod small_blocks;
mod support;
mod unprivileged;
mod wan;
mod wan_cluster;
