use dlm::dlm;

#[dlm]
static mut GRID: [f64; 1024];

fn main() {}
