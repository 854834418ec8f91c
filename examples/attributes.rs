//! attributes: `#[dlm]` arrays and `#[dlm::main]`, 1.06 GiB in DLM items.
//!
//! ```text
//! DLM_LOCAL_MEM=256M cargo run --release --example attributes           # DLM memory
//! cargo run --release --example attributes -- --native                  # ordinary memory
//! ```
//! Both print the same digest.

use dlm::dlm;

const N: usize = 8192;
const ROWS: usize = 4096;

#[dlm]
static GRID: [[f64; N]; N]; // 512 MiB, zero-initialized, in DLM memory

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb)
}

/// The computation, on whatever memory holds the three arrays.
fn compute(grid: &mut [[f64; N]], big: &mut [u64], rows: &mut [[u32; ROWS]]) -> u64 {
    for (i, row) in grid.iter_mut().enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            *x = ((i * 31 + j * 17) % 1000) as f64 * 0.5;
        }
    }
    for i in 1..N - 1 {
        let (above, rest) = grid.split_at_mut(i);
        let (row, below) = rest.split_at_mut(1);
        for (j, x) in row[0].iter_mut().enumerate() {
            *x = (above[i - 1][j] + *x + below[0][j]) / 3.0;
        }
    }
    for (i, x) in big.iter_mut().enumerate() {
        *x = mix(i as u64);
    }
    for k in 0..big.len() / 4096 {
        let i = (mix(k as u64) as usize) % big.len();
        big[i] = big[i].rotate_left(7) ^ k as u64;
    }
    for (i, row) in rows.iter_mut().enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            *x = big[(i * ROWS + j) * 3 % big.len()] as u32 ^ grid[i][j].to_bits() as u32;
        }
    }
    rows[1][2] = big[7] as u32;
    let mut digest = 0u64;
    for row in grid.iter().step_by(7) {
        digest = row.iter().fold(digest, |d, x| mix(d ^ x.to_bits()));
    }
    digest = big.iter().step_by(5).fold(digest, |d, &x| mix(d ^ x));
    rows.iter().flatten().fold(digest, |d, &x| mix(d ^ u64::from(x)))
}

#[dlm::main]
fn main() {
    let digest = if std::env::args().any(|a| a == "--native") {
        let mut grid = vec![[0.0f64; N]; N];
        let mut big = vec![0u64; 1 << 26];
        let mut rows = vec![[0u32; ROWS]; ROWS];
        compute(&mut grid, &mut big, &mut rows)
    } else {
        #[dlm]
        let mut big = vec![0u64; 1 << 26]; // 512 MiB, a DLM-backed vector
        #[dlm]
        let mut rows = [[0u32; ROWS]; ROWS]; // 64 MiB, a DLM-backed array, never on the stack
        GRID.write()[3][4] = 1.0;
        assert_eq!(GRID.read()[3][4], 1.0);
        let mut grid = GRID.write();
        compute(&mut grid[..], &mut big, &mut rows[..])
    };
    println!("digest: {digest:016x}");
}
