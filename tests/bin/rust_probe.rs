//! Small Rust programs for the end-to-end tests: `rust_probe MODE`.
//! - `oversize`: asking for more than budget + servers must give a clear error.
//! - `vec MiB`: a DlmVec grown by push past the local budget keeps every element.

use dlm::{DlmBox, DlmVec};

fn main() {
    let dlm = dlm::start_or_exit();
    let args = dlm.args().to_vec();
    let code = match args.get(1).map(String::as_str) {
        Some("oversize") => match DlmBox::<[u8]>::new_zeroed_slice(1 << 40) {
            Ok(_) => {
                println!("a 1 TiB allocation succeeded");
                1
            }
            Err(e) => {
                println!("error: {e}");
                0
            }
        },
        Some("vec") => {
            let mib: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64);
            let n = (mib << 20) / 8;
            let mut v = DlmVec::with_capacity(1).expect("DLM memory");
            for i in 0..n as u64 {
                v.push(i.wrapping_mul(0x9e3779b97f4a7c15)).expect("DLM memory");
            }
            let bad = v.iter().enumerate().filter(|&(i, &x)| x != (i as u64).wrapping_mul(0x9e3779b97f4a7c15)).count();
            let stats = dlm.stats();
            println!("vec: {n} elements, {bad} mismatches, {} pages evicted", stats.pages_evicted);
            i32::from(bad != 0 || stats.pages_evicted == 0)
        }
        _ => {
            eprintln!("usage: rust_probe oversize | vec MiB");
            2
        }
    };
    drop(dlm);
    std::process::exit(code);
}
