use dlm::dlm;

#[dlm(huge)]
static GRID: [f64; 1024];

#[dlm::main(fast)]
fn main() {}
