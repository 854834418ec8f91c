use dlm::dlm;

fn main() {
    #[dlm]
    let cells = [0u8; 4096];
    println!("{}", cells[0]);
}
