//! bigsweep: DLM memory from Rust, several times larger than the local budget.
//!
//! The same computation as `examples/c/bigarray.c` (so the checksums agree): fill four blocks
//! with a pattern, sweep them sequentially and in a scattered order, free and reallocate one
//! (it must read as zeros), check every element.
//!
//! ```text
//! DLM_LOCAL_MEM=256M cargo run --release --example bigsweep -- 1024      # MiB of data
//! cargo run --release --example bigsweep -- 1024 --native                # ordinary memory
//! ```

use dlm::DlmBox;
use std::ops::DerefMut;

const BLOCKS: u64 = 4;

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

fn expected(b: u64, i: u64) -> u64 {
    if b == 1 {
        return mix(i ^ 0xabcdef);
    }
    let g = b << 40 | i;
    mix(g).wrapping_mul(3).wrapping_add(1).wrapping_add(g ^ 0x5555)
}

/// Runs the passes over blocks made by `alloc`; returns (mismatches, stale, checksum).
fn run<B: DerefMut<Target = [u64]>>(n: u64, mut alloc: impl FnMut() -> B) -> (u64, u64, u64) {
    let mut blocks: Vec<B> = (0..BLOCKS).map(|_| alloc()).collect();
    for (b, block) in blocks.iter_mut().enumerate() {
        for (i, x) in block.iter_mut().enumerate() {
            *x = mix((b as u64) << 40 | i as u64);
        }
    }
    for block in &mut blocks {
        for x in block.iter_mut() {
            *x = x.wrapping_mul(3).wrapping_add(1);
        }
    }
    let stride: u64 = 0x9e3779b1 | 1;
    for (b, block) in blocks.iter_mut().enumerate() {
        for k in 0..n {
            let i = k.wrapping_mul(stride) & (n - 1);
            block[i as usize] = block[i as usize].wrapping_add(((b as u64) << 40 | i) ^ 0x5555);
        }
    }
    blocks[1] = alloc();
    let stale = blocks[1].iter().filter(|&&x| x != 0).count() as u64;
    for (i, x) in blocks[1].iter_mut().enumerate() {
        *x = mix(i as u64 ^ 0xabcdef);
    }
    let (mut bad, mut sum) = (0u64, 0u64);
    for (b, block) in blocks.iter().enumerate() {
        for (i, &x) in block.iter().enumerate() {
            bad += u64::from(x != expected(b as u64, i as u64));
            sum = sum.wrapping_add(x.wrapping_mul(i as u64 | 1));
        }
    }
    (bad, stale, sum)
}

fn main() {
    let dlm = dlm::start_or_exit();
    let args = dlm.args();
    let mib: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1024);
    let native = args.iter().any(|a| a == "--native");
    let n = (mib << 20) / BLOCKS / 8;
    let (bad, stale, sum) = if native {
        run(n, || vec![0u64; n as usize])
    } else {
        run(n, || DlmBox::<[u64]>::new_zeroed_slice(n as usize).unwrap_or_else(|e| panic!("{e}")))
    };
    println!("elements: {} mismatches: {bad} stale: {stale}", n * BLOCKS);
    println!("checksum: {sum:016x}");
    drop(dlm);
    std::process::exit(i32::from(bad != 0 || stale != 0));
}
