//! himeno: a Himeno-style Jacobi solver for a 3-D Poisson equation (19-point stencil), with its
//! fourteen grids as `#[dlm]` statics (about 240 MB).
//!
//! ```text
//! DLM_LOCAL_MEM=60M cargo run --release --example himeno            # a quarter of the data local
//! cargo run --release --example himeno -- --native                  # the same solver on ordinary memory
//! cargo run --release --example himeno -- 40                        # iterations (default 20)
//! ```
//! Both print MFLOPS and the same validation value (the residual `gosa` of the last iteration).

use dlm::dlm;
use std::time::Instant;

const MI: usize = 129;
const MJ: usize = 129;
const MK: usize = 257;
/// Floating-point operations per grid point and iteration.
const FLOPS_PER_POINT: f64 = 34.0;
const OMEGA: f32 = 0.8;

type Grid = [[[f32; MK]; MJ]; MI];
type Planes = [[[f32; MK]; MJ]];

#[dlm]
static P: Grid;
#[dlm]
static A: [Grid; 4];
#[dlm]
static B: [Grid; 3];
#[dlm]
static C: [Grid; 3];
#[dlm]
static BND: Grid;
#[dlm]
static WRK1: Grid;
#[dlm]
static WRK2: Grid;

/// The solver's arrays, wherever they live.
struct Arrays<'a> {
    p: &'a mut Planes,
    a: [&'a mut Planes; 4],
    b: [&'a mut Planes; 3],
    c: [&'a mut Planes; 3],
    bnd: &'a mut Planes,
    wrk1: &'a mut Planes,
    wrk2: &'a mut Planes,
}

fn fill(grid: &mut Planes, value: impl Fn(usize) -> f32) {
    for (i, plane) in grid.iter_mut().enumerate() {
        for row in plane.iter_mut() {
            row.fill(value(i));
        }
    }
}

fn initialise(m: &mut Arrays) {
    fill(m.p, |i| (i * i) as f32 / ((MI - 1) * (MI - 1)) as f32);
    for (n, a) in m.a.iter_mut().enumerate() {
        fill(a, |_| if n == 3 { 1.0 / 6.0 } else { 1.0 });
    }
    for b in m.b.iter_mut() {
        fill(b, |_| 0.0);
    }
    for c in m.c.iter_mut() {
        fill(c, |_| 1.0);
    }
    fill(m.bnd, |_| 1.0);
    fill(m.wrk1, |_| 0.0);
    fill(m.wrk2, |_| 0.0);
}

/// `iterations` Jacobi sweeps; returns the last residual.
fn jacobi(m: &mut Arrays, iterations: usize) -> f32 {
    let mut gosa = 0.0f32;
    for _ in 0..iterations {
        gosa = 0.0;
        let p = &*m.p;
        for i in 1..MI - 1 {
            for j in 1..MJ - 1 {
                for k in 1..MK - 1 {
                    let s0 = m.a[0][i][j][k] * p[i + 1][j][k]
                        + m.a[1][i][j][k] * p[i][j + 1][k]
                        + m.a[2][i][j][k] * p[i][j][k + 1]
                        + m.b[0][i][j][k]
                            * (p[i + 1][j + 1][k] - p[i + 1][j - 1][k] - p[i - 1][j + 1][k] + p[i - 1][j - 1][k])
                        + m.b[1][i][j][k]
                            * (p[i][j + 1][k + 1] - p[i][j - 1][k + 1] - p[i][j + 1][k - 1] + p[i][j - 1][k - 1])
                        + m.b[2][i][j][k]
                            * (p[i + 1][j][k + 1] - p[i - 1][j][k + 1] - p[i + 1][j][k - 1] + p[i - 1][j][k - 1])
                        + m.c[0][i][j][k] * p[i - 1][j][k]
                        + m.c[1][i][j][k] * p[i][j - 1][k]
                        + m.c[2][i][j][k] * p[i][j][k - 1]
                        + m.wrk1[i][j][k];
                    let ss = (s0 * m.a[3][i][j][k] - p[i][j][k]) * m.bnd[i][j][k];
                    gosa += ss * ss;
                    m.wrk2[i][j][k] = p[i][j][k] + OMEGA * ss;
                }
            }
        }
        for i in 1..MI - 1 {
            for j in 1..MJ - 1 {
                m.p[i][j][1..MK - 1].copy_from_slice(&m.wrk2[i][j][1..MK - 1]);
            }
        }
    }
    gosa
}

fn run(m: &mut Arrays, iterations: usize) {
    initialise(m);
    let started = Instant::now();
    let gosa = jacobi(m, iterations);
    let seconds = started.elapsed().as_secs_f64();
    let points = ((MI - 2) * (MJ - 2) * (MK - 2)) as f64;
    println!("grid: {MI}x{MJ}x{MK}, iterations: {iterations}, time: {seconds:.3} s");
    println!("MFLOPS: {:.1}", FLOPS_PER_POINT * points * iterations as f64 / seconds / 1e6);
    println!("validation (gosa): {gosa:e}");
}

fn ordinary_grid() -> Vec<[[f32; MK]; MJ]> {
    vec![[[0.0; MK]; MJ]; MI]
}

#[dlm::main]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let iterations = args.iter().skip(1).find_map(|a| a.parse().ok()).unwrap_or(20);
    if args.iter().any(|a| a == "--native") {
        let mut g: Vec<Vec<[[f32; MK]; MJ]>> = (0..14).map(|_| ordinary_grid()).collect();
        let [p, a0, a1, a2, a3, b0, b1, b2, c0, c1, c2, bnd, wrk1, wrk2] = &mut g[..] else { unreachable!() };
        let mut arrays = Arrays { p, a: [a0, a1, a2, a3], b: [b0, b1, b2], c: [c0, c1, c2], bnd, wrk1, wrk2 };
        run(&mut arrays, iterations);
        return;
    }
    let (mut p, mut a, mut b, mut c) = (P.write(), A.write(), B.write(), C.write());
    let (mut bnd, mut wrk1, mut wrk2) = (BND.write(), WRK1.write(), WRK2.write());
    let [a0, a1, a2, a3] = &mut *a;
    let [b0, b1, b2] = &mut *b;
    let [c0, c1, c2] = &mut *c;
    let mut arrays = Arrays {
        p: &mut p[..],
        a: [&mut a0[..], &mut a1[..], &mut a2[..], &mut a3[..]],
        b: [&mut b0[..], &mut b1[..], &mut b2[..]],
        c: [&mut c0[..], &mut c1[..], &mut c2[..]],
        bnd: &mut bnd[..],
        wrk1: &mut wrk1[..],
        wrk2: &mut wrk2[..],
    };
    run(&mut arrays, iterations);
}
