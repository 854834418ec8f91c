use dlm::dlm;

#[dlm::main]
fn main() {
    #[dlm]
    let answer = 42u64;
    #[dlm]
    let listed = vec![1, 2, 3];
    println!("{answer} {}", listed[0]);
}
