use dlm::dlm;

#[dlm::main]
fn main() {
    let n = std::env::args().count();
    #[dlm]
    let cells = [0u8; n];
    println!("{}", cells[0]);
}
