//! `#[dlm::main]` on `fn main() -> Result`: `result_main ok|fail`.

use dlm::dlm;

#[dlm]
static TABLE: [[u16; 1024]; 1024] = [[7; 1024]; 1024];

#[dlm::main]
fn main() -> Result<(), String> {
    #[dlm]
    let mut cells: Vec<u32> = vec![3; 1 << 22];
    cells[12] += u32::from(TABLE.read()[5][6]);
    println!("cells[12] = {}, sum = {}", cells[12], cells.iter().map(|&c| u64::from(c)).sum::<u64>());
    // Two write guards at once are refused, not undefined behaviour.
    if std::env::args().any(|a| a == "two-writers") {
        let _first = TABLE.write();
        let _second = TABLE.write();
    }
    match std::env::args().nth(1).as_deref() {
        Some("fail") => Err("asked to fail".into()),
        _ => Ok(()),
    }
}
