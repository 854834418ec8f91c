//! A Rust `#[dlm]` program whose DLM memory goes through files: `rust_fileio DIR MiB` writes a
//! DLM vector to a file with `dlm::write_all`, reads it back into another with
//! `dlm::read_exact`, and its head into a `#[dlm] static`. It prints checksums of what was read
//! and of the same data computed in ordinary memory, and exits 1 if any differs. As a user who
//! may not open /dev/userfaultfd, plain `File::read` into DLM memory fails with EFAULT; these
//! two calls hold the memory resident while the kernel touches it.

use dlm::dlm;
use std::fs::File;
use std::path::Path;

const HEAD: usize = 1 << 20;

#[dlm]
static HEAD_COPY: [u64; HEAD];

fn pattern(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64 >> 7)
}

fn checksum(values: impl Iterator<Item = u64>) -> u64 {
    values.fold(0, |sum, v| sum.rotate_left(5) ^ v)
}

#[dlm::main]
fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(args.get(1).map_or(".", String::as_str)).to_path_buf();
    let mib: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64);
    let n = ((mib << 20) / 8).max(HEAD);
    #[dlm]
    let mut data: Vec<u64> = vec![0; n];
    for (i, x) in data.iter_mut().enumerate() {
        *x = pattern(i);
    }
    let path = dir.join("rust_fileio.bin");
    dlm::write_all(&mut File::create(&path)?, &data)?;
    #[dlm]
    let mut back: Vec<u64> = vec![0; n];
    dlm::read_exact(&mut File::open(&path)?, &mut back)?;
    dlm::read_exact(&mut File::open(&path)?, &mut *HEAD_COPY.write())?;

    let native = checksum((0..n).map(pattern));
    let read_back = checksum(back.iter().copied());
    let head_native = checksum((0..HEAD).map(pattern));
    let head = checksum(HEAD_COPY.read().iter().copied());
    println!("native {native:016x}\nread back {read_back:016x}");
    println!("head native {head_native:016x}\nhead read {head:016x}");
    if native != read_back || head_native != head {
        println!("rust_fileio FAILED");
        std::process::exit(1);
    }
    println!("rust_fileio ok");
    Ok(())
}
